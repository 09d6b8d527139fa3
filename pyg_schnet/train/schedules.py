"""Learning-rate schedules of a training run: the paper's smooth decay per step, or a plateau schedule
per epoch.

* ``"paper"`` (section 5 of the paper): ``lr(step) = lr0 * decay ** (step / decay_steps)``
  (:func:`paper_lr_schedule`, a :class:`~torch.optim.lr_scheduler.LambdaLR` stepped after every
  optimizer step).
* ``"plateau"``: the learning rate is multiplied by ``factor`` when the validation loss (Eq. 5, EMA
  weights) has not been lower than its best for more than ``patience`` epochs, never below
  ``min_lr``; after a reduction ``cooldown`` epochs pass before epochs without improvement count
  again (:func:`plateau_lr_schedule`, a :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` stepped
  once per epoch with the validation loss). This is SchNetPack's default schedule; the defaults
  (:data:`PLATEAU_DEFAULTS`) are those of its ``src/schnetpack/configs/task/scheduler/reduce_on_plateau.yaml``
  (since commit b384435, 2022-10-20, unchanged to 2025: factor 0.5, patience 75 epochs, cooldown 10
  epochs, min_lr 0, threshold 0: any lower loss is an improvement; its ``smoothing_factor`` 0 means
  no smoothing of the monitored loss, as here).

Both keep their whole state in ``state_dict()`` (tensors, numbers and strings), which the trainer
saves in ``checkpoint.pt``, so a resumed run continues the same schedule exactly.
"""

from __future__ import annotations

from typing import Dict, Union

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

#: Names of the schedules :class:`~pyg_schnet.train.trainer.TrainConfig` accepts as ``lr_schedule``.
LR_SCHEDULES = ("paper", "plateau")

#: SchNetPack's plateau settings (``src/schnetpack/configs/task/scheduler/reduce_on_plateau.yaml``):
#: factor per reduction, epochs without improvement before one, epochs of rest after one, the lowest
#: learning rate.
PLATEAU_DEFAULTS: Dict[str, float] = {"factor": 0.5, "patience": 75, "cooldown": 10, "min_lr": 0.0}
#: A loss counts as an improvement when lower than the best by this relative amount (SchNetPack: 0).
PLATEAU_THRESHOLD = 0.0

LRSchedule = Union[LambdaLR, ReduceLROnPlateau]


def paper_lr_schedule(optimizer: torch.optim.Optimizer, decay: float = 0.96, decay_steps: int = 100_000) -> LambdaLR:
    """``lr(step) = lr0 * decay ** (step / decay_steps)``; call ``.step()`` after every optimizer step."""
    if not 0.0 < decay <= 1.0 or decay_steps < 1:
        raise ValueError(f"need 0 < decay <= 1 and decay_steps >= 1, got {decay} and {decay_steps}")

    def factor(step: int) -> float:
        return decay ** (step / decay_steps)

    return LambdaLR(optimizer, factor)


def plateau_lr_schedule(
    optimizer: torch.optim.Optimizer,
    factor: float = PLATEAU_DEFAULTS["factor"],
    patience: int = int(PLATEAU_DEFAULTS["patience"]),
    min_lr: float = PLATEAU_DEFAULTS["min_lr"],
    cooldown: int = int(PLATEAU_DEFAULTS["cooldown"]),
) -> ReduceLROnPlateau:
    """``lr <- max(lr * factor, min_lr)`` after more than ``patience`` epochs without a lower validation
    loss, then ``cooldown`` epochs of rest; call ``.step(val_loss)`` once per epoch."""
    if not 0.0 < factor < 1.0 or patience < 0 or cooldown < 0 or not min_lr >= 0.0:
        raise ValueError(
            f"need 0 < factor < 1, patience >= 0, cooldown >= 0 and min_lr >= 0, "
            f"got {factor}, {patience}, {cooldown}, {min_lr}"
        )
    return ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=factor,
        patience=patience,
        threshold=PLATEAU_THRESHOLD,
        threshold_mode="rel",
        cooldown=cooldown,
        min_lr=min_lr,
    )


def steps_per_batch(schedule: LRSchedule) -> bool:
    """Whether ``schedule`` is stepped after every optimizer step (else once per epoch, on the validation loss)."""
    return not isinstance(schedule, ReduceLROnPlateau)


def current_lr(schedule: LRSchedule) -> float:
    """The learning rate the next optimizer step uses (a host number: no read of the device)."""
    return float(schedule.get_last_lr()[0])
