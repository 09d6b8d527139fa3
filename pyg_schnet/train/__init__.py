"""Training with the paper's protocol (Schütt et al. 2017, sections 4.2 and 5).

* :func:`energy_force_loss` -- Eq. 5; :mod:`.metrics` -- MAE / RMSE in kcal/mol and kcal/mol/Angstrom;
* :func:`standardize_model` -- per-atom energy mean / std (and atomrefs) of the training split, and the
  standardisation of intensive and dipole heads (:func:`standardize_heads` for the extra heads);
* :mod:`.heads` -- several heads: targets ``data.<name>``, loss weights, :class:`TargetKindWarning`;
* :class:`Trainer` / :class:`TrainConfig` -- Adam, exponential learning-rate decay (or a plateau
  schedule, :mod:`.schedules`), EMA weights, early stopping, caps, checkpoints and ``resume``, an
  optional TensorBoard log (:mod:`.tensorboard_log`);
* :func:`load_model` / :func:`save_model` are :mod:`pyg_schnet.io.model_file`'s; the protocols behind
  ``benchmarks/*.py`` are :mod:`pyg_schnet.experiments`.
"""

from pyg_schnet.io.model_file import load_model, save_model
from pyg_schnet.train.heads import TargetKindWarning
from pyg_schnet.train.loss import energy_force_loss, per_molecule_loss
from pyg_schnet.train.metrics import ErrorAccumulator, evaluate
from pyg_schnet.train.predict import predict
from pyg_schnet.train.schedules import paper_lr_schedule, plateau_lr_schedule
from pyg_schnet.train.standardize import energy_statistics, standardize_heads, standardize_model
from pyg_schnet.train.trainer import (
    FitResult,
    NonFiniteError,
    TrainConfig,
    Trainer,
    exponential_moving_average,
)

__all__ = [
    "Trainer",
    "TrainConfig",
    "FitResult",
    "NonFiniteError",
    "paper_lr_schedule",
    "plateau_lr_schedule",
    "exponential_moving_average",
    "energy_force_loss",
    "per_molecule_loss",
    "ErrorAccumulator",
    "evaluate",
    "predict",
    "energy_statistics",
    "standardize_model",
    "standardize_heads",
    "TargetKindWarning",
    "load_model",
    "save_model",
]
