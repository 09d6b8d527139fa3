"""An optional TensorBoard log of a training run (``TrainConfig(tensorboard=True)``, ``--tensorboard``).

Written by rank 0 to ``OUT/tensorboard`` once per epoch, after ``checkpoint.pt`` and ``log.csv``, with
the optimizer step as the x axis, the same numbers as the epoch's ``log.csv`` row:

* ``train/loss`` and its two terms of Eq. 5, ``train/loss_energy`` = ``w_E * mean (E - E_hat)^2``
  (``energy_weight`` times the squared training energy RMSE) and ``train/loss_forces`` (the rest:
  ``rho / n_m * sum_i |F_i - F_hat_i|^2``, averaged over molecules); ``train/energy_mae``,
  ``train/force_mae``;
* ``val/loss``, ``val/energy_mae``, ``val/energy_rmse``, ``val/force_mae``, ``val/force_rmse`` (EMA
  weights), ``val/best_loss``;
* ``lr`` (the learning rate after the epoch), ``time/epoch_s``, ``time/elapsed_s``, ``epoch``;
* per extra head ``<name>`` (:mod:`pyg_schnet.train.heads`): ``train/<name>_mae``, ``val/<name>_mae``,
  ``val/<name>_rmse`` and its loss term ``train/loss_<name>`` = ``w_h * mean |y_h - y_h_hat|^2``
  (``train/loss_forces`` is then what is left of the loss after the energy and head terms);
* with a stress term (``TrainConfig.stress_weight > 0``): ``train/stress_mae``, ``val/stress_mae``,
  ``val/stress_rmse`` (energy unit / Angstrom^3, over the nine components) and ``train/loss_stress`` =
  ``w_sigma * mean (sigma - sigma_hat)^2`` (``stress_weight`` times the squared training stress RMSE).

Errors are in the model's units (``log.csv``'s), force terms only when the run has forces. Nothing is
logged per optimizer step: the trainer keeps a step's errors on the device and reads them once per
epoch (``tests/test_host_syncs.py``), and the paper's per-step learning rate is a smooth function of
the step. A resumed run purges what a killed run logged after its checkpoint (``purge_step``), and a
fresh run into the same folder (``--overwrite``) what the earlier run logged, so every step appears
once. View with ``tensorboard --logdir runs/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional

from pyg_schnet.train.heads import VECTOR_KINDS

#: What to run when the ``tensorboard`` package is missing.
HOW_TO_INSTALL = "pip install tensorboard (or pip install 'pyg-schnet[tensorboard]')"

#: ``log.csv`` column -> TensorBoard tag, for the columns logged as they are.
TAGS = {
    "train_loss": "train/loss",
    "train_energy_mae": "train/energy_mae",
    "train_force_mae": "train/force_mae",
    "val_loss": "val/loss",
    "val_energy_mae": "val/energy_mae",
    "val_energy_rmse": "val/energy_rmse",
    "val_force_mae": "val/force_mae",
    "val_force_rmse": "val/force_rmse",
    "best_val_loss": "val/best_loss",
    "lr": "lr",
    "epoch_s": "time/epoch_s",
    "elapsed_s": "time/elapsed_s",
    "epoch": "epoch",
    "train_stress_mae": "train/stress_mae",
    "val_stress_mae": "val/stress_mae",
    "val_stress_rmse": "val/stress_rmse",
}


def require_tensorboard(who: str) -> None:
    """Raise :class:`ImportError` naming ``who`` and how to install TensorBoard when it does not import."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{who} needs the tensorboard package, which is not installed: {HOW_TO_INSTALL}") from error


class TensorBoardLog:
    """A :class:`torch.utils.tensorboard.SummaryWriter` in ``log_dir`` that writes one training epoch at a time.

    Args:
        log_dir: the folder of the event files (created).
        purge_step: TensorBoard hides the events earlier event files in ``log_dir`` hold at this
            optimizer step or later: on resume the checkpoint's step + 1, for a fresh run 0 (``None``:
            hide nothing).
    """

    def __init__(self, log_dir: Path, purge_step: Optional[int] = None) -> None:
        require_tensorboard("the TensorBoard log")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def epoch(
        self,
        row: Mapping[str, Any],
        train: Mapping[str, float],
        rho: float,
        energy_weight: float,
        heads: Optional[Mapping[str, float]] = None,
        kinds: Optional[Mapping[str, str]] = None,
        stress_weight: float = 0.0,
    ) -> None:
        """Log one epoch: ``row`` is its ``log.csv`` row (``history[-1]``), ``train`` the training
        errors (:meth:`~pyg_schnet.train.metrics.ErrorAccumulator.compute`) for the loss terms;
        ``heads`` the extra heads' loss weights by name (``kinds`` their kinds: a ``"dipole"`` head's
        squared error sums three components); ``stress_weight`` the weight of the stress term (0: none)."""
        step = int(row["step"])
        for column, tag in TAGS.items():
            value = row.get(column)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, float(value), step)
        energy_term = energy_weight * train["energy_rmse"] ** 2
        self.writer.add_scalar("train/loss_energy", energy_term, step)
        rest = train["loss"] - energy_term
        for name, weight in (heads or {}).items():
            for column, tag in (
                (f"train_{name}_mae", f"train/{name}_mae"),
                (f"val_{name}_mae", f"val/{name}_mae"),
                (f"val_{name}_rmse", f"val/{name}_rmse"),
            ):
                value = row.get(column)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(tag, float(value), step)
            width = 3 if (kinds or {}).get(name) in VECTOR_KINDS else 1
            term = weight * width * train[f"{name}_rmse"] ** 2
            self.writer.add_scalar(f"train/loss_{name}", term, step)
            rest -= term
        if stress_weight > 0 and "stress_rmse" in train:
            term = stress_weight * train["stress_rmse"] ** 2
            self.writer.add_scalar("train/loss_stress", term, step)
            rest -= term
        if rho > 0:
            self.writer.add_scalar("train/loss_forces", rest, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
