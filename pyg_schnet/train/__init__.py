"""Training with the paper's protocol (Schütt et al. 2017, sections 4.2 and 5).

* :func:`energy_force_loss` -- Eq. 5; :mod:`.metrics` -- MAE / RMSE in kcal/mol and kcal/mol/Angstrom;
* :func:`standardize_model` -- per-atom energy mean / std (and atomrefs) of the training split;
* :class:`Trainer` / :class:`TrainConfig` -- Adam, exponential learning-rate decay, EMA weights,
  early stopping, caps, checkpoints and ``resume``;
* :func:`load_model` -- a saved ``model.pt`` back as a :class:`pyg_schnet.SchNet` in eval mode;
* :mod:`.cli` and :mod:`.protocols` -- what ``benchmarks/*.py`` and ``python -m pyg_schnet.demo`` run.
"""
from .checkpoint import load_model, save_model
from .loop import FitResult, NonFiniteError, TrainConfig, Trainer, exponential_moving_average, paper_lr_schedule
from .loss import energy_force_loss, per_molecule_loss
from .metrics import ErrorAccumulator, evaluate
from .predict import predict
from .standardize import energy_statistics, standardize_model

__all__ = [
    "Trainer",
    "TrainConfig",
    "FitResult",
    "NonFiniteError",
    "paper_lr_schedule",
    "exponential_moving_average",
    "energy_force_loss",
    "per_molecule_loss",
    "ErrorAccumulator",
    "evaluate",
    "predict",
    "energy_statistics",
    "standardize_model",
    "load_model",
    "save_model",
]
