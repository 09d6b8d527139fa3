"""The training loop of the paper (section 5): Adam, exponential learning-rate decay, EMA weights.

* Adam with learning rate ``1e-3``, decayed smoothly by ``0.96`` every ``100,000`` optimizer steps:
  ``lr(step) = 1e-3 * 0.96 ** (step / 100_000)`` (:func:`paper_lr_schedule`, a
  :class:`torch.optim.lr_scheduler.LambdaLR` stepped after every optimizer step); or, with
  ``lr_schedule="plateau"``, SchNetPack's plateau schedule stepped once per epoch on the validation
  loss (:mod:`pyg_schnet.train.schedules`).
* Mini-batches of 32 molecules, the loss of Eq. 5 (:mod:`pyg_schnet.train.loss`).
* An exponential moving average of the weights with decay 0.99 per step
  (:class:`torch.optim.swa_utils.AveragedModel` with :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn`)
  is the model that is validated, tested and saved.
* Early stopping on the validation loss (Eq. 5 with the training ``rho``, EMA weights, once per
  epoch), with a patience in epochs; caps on the number of epochs and on the training wall time.
* After every epoch an atomic checkpoint (model, EMA, optimizer, scheduler, RNG states, step, epoch,
  split, best validation, history) and a CSV log; ``fit(resume=True)`` continues from it, so a killed
  run loses at most one epoch, and on the CPU with the same seed it ends exactly where an
  uninterrupted run would. A resume refuses settings that differ from the checkpoint's
  (:data:`RESUME_FIXED`); the caps of :data:`RESUME_MAY_CHANGE` may change.
* Training stops with :class:`NonFiniteError` (naming the epoch and step) as soon as the training
  loss, the weights or the validation loss stop being finite; nothing is written for that epoch, so
  ``checkpoint.pt`` and ``model.pt`` stay those of the last good epoch.
* Temporary files that killed writers left in the output folder are removed when training starts.
* Extra heads of the model (``SchNetConfig.extra_heads``) are trained on ``data.<name>`` with the
  weights ``TrainConfig.head_weights`` (:mod:`pyg_schnet.train.heads`); their errors join the metrics,
  ``log.csv`` (``train_<name>_mae``, ``val_<name>_mae``, ``val_<name>_rmse``), TensorBoard and
  ``results.json``. A model whose ``config.output`` does not suit the training set's declared
  ``target_kind`` gets a :class:`~pyg_schnet.train.heads.TargetKindWarning`.
* With ``stress_weight > 0`` every training step computes the stress of its periodic structures
  (:meth:`~pyg_schnet.SchNet.energy_forces_stress`) and the loss adds ``stress_weight`` times its mean
  squared error over the nine components (:mod:`pyg_schnet.train.loss`); the stress errors join the
  metrics, ``log.csv`` (``train_stress_mae``, ``val_stress_mae``, ``val_stress_rmse``), TensorBoard and
  ``results.json``. Every training and validation structure must then be periodic with a ``data.stress``
  (refused before training otherwise); with ``stress_weight = 0`` the step is the one without stress.
* With ``tensorboard=True`` a TensorBoard log in ``out_dir/tensorboard`` (per epoch: loss terms,
  MAEs, learning rate, epoch time; :mod:`pyg_schnet.train.tensorboard_log`).
* Under ``torchrun`` the same loop runs data-parallel (DDP) and takes the same optimizer steps as one
  process; rank 0 alone writes files (:mod:`pyg_schnet.train.distributed`).
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
import numbers
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from pyg_schnet.batching.auto import measure_batching
from pyg_schnet.datasets.transforms import energy_unit_of
from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.io.files import atomic_write, remove_stale_temporaries
from pyg_schnet.io.model_file import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMATS,
    load_verified,
    save_model,
    seal,
    write_payload,
)
from pyg_schnet.io.run_lock import RunLock
from pyg_schnet.io.units import HOW_TO_SET_UNITS, check_units, unit_value
from pyg_schnet.train import distributed
from pyg_schnet.train.domain import training_domain_of
from pyg_schnet.train.heads import (
    check_head_weights,
    check_target_kind,
    extra_head_kinds,
    head_target,
    resolve_head_weights,
    target_unit_of,
)
from pyg_schnet.train.loss import energy_force_loss
from pyg_schnet.train.metrics import ErrorAccumulator, evaluate
from pyg_schnet.train.predict import BATCHING_MODES, check_batching, predict_outputs, predict_with_stress
from pyg_schnet.train.schedules import (
    LR_SCHEDULES,
    PLATEAU_DEFAULTS,
    LRSchedule,
    current_lr,
    paper_lr_schedule,
    plateau_lr_schedule,
    steps_per_batch,
)
from pyg_schnet.train.state import rng_state, seed_everything, set_rng_state
from pyg_schnet.train.tensorboard_log import TensorBoardLog, require_tensorboard
from pyg_schnet.validation import MAX_SEED, check_device, check_finite, check_positive_int, trusted_inputs

#: Mini-batches between two reads of :class:`FirstNonFinite` (and at the end of every epoch): the
#: steps between them run without waiting for the device.
NON_FINITE_CHECK_EVERY = 10


class FirstNonFinite:
    """The first non-finite training loss of an epoch, recorded on the loss's device.

    :meth:`add` keeps the 1-based mini-batch index and the value of the first loss that is not finite
    without reading the device, so a training step makes no host synchronisation (a GPU's launch queue
    never drains); :meth:`first` reads the record (one synchronisation), every
    :data:`NON_FINITE_CHECK_EVERY` mini-batches. The steps after a bad one until that read only touch
    weights that are then discarded: the error is raised before anything of the epoch is written.
    """

    def __init__(self) -> None:
        self.count = 0
        self._index: Optional[Tensor] = None
        self._value: Optional[Tensor] = None

    def add(self, loss: Tensor) -> None:
        loss = loss.detach().reshape(()).double()
        self.count += 1
        if self._index is None:
            self._index = torch.zeros((), dtype=torch.float64, device=loss.device)
            self._value = torch.zeros((), dtype=torch.float64, device=loss.device)
        assert self._value is not None
        newly = (self._index == 0) & ~torch.isfinite(loss)
        self._index = torch.where(newly, float(self.count), self._index)
        self._value = torch.where(newly, loss, self._value)

    def first(self) -> Optional[Tuple[int, float]]:
        """``(mini-batch index, loss)`` of the first non-finite loss so far, ``None`` when all were finite."""
        if self._index is None or self._value is None:
            return None
        index, value = torch.stack([self._index, self._value]).cpu().tolist()
        return (int(index), value) if index else None


#: Columns of the per-epoch CSV log (``log.csv``), in order.
LOG_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_energy_mae",
    "train_force_mae",
    "val_loss",
    "val_energy_mae",
    "val_energy_rmse",
    "val_force_mae",
    "val_force_rmse",
    "best_val_loss",
    "epoch_s",
    "elapsed_s",
)
#: Columns ``log.csv`` adds when the run trains on the stress (``TrainConfig.stress_weight > 0``).
STRESS_LOG_COLUMNS = ("train_stress_mae", "val_stress_mae", "val_stress_rmse")

#: :class:`TrainConfig` fields a checkpoint fixes for the whole run: they shape the optimisation
#: (loss, optimizer, schedule, batches, averaging, random streams), so a resume that changes one is
#: refused rather than silently ignored or applied mid-run.
RESUME_FIXED = (
    "rho",
    "energy_weight",
    "lr",
    "lr_decay",
    "lr_decay_steps",
    "lr_schedule",
    "plateau_factor",
    "plateau_patience",
    "plateau_cooldown",
    "min_lr",
    "batch_size",
    "ema_decay",
    "seed",
    "batching",
    "head_weights",
    "stress_weight",
)
#: What a checkpoint written before a field existed (0.2.0) was trained with: the paper's schedule
#: (and, before 0.4.1, no extra heads and no stress term).
RESUME_LEGACY_DEFAULTS = {
    "head_weights": {},
    "stress_weight": 0.0,
    "lr_schedule": "paper",
    "plateau_factor": PLATEAU_DEFAULTS["factor"],
    "plateau_patience": int(PLATEAU_DEFAULTS["patience"]),
    "plateau_cooldown": int(PLATEAU_DEFAULTS["cooldown"]),
    "min_lr": PLATEAU_DEFAULTS["min_lr"],
}
#: :class:`TrainConfig` fields a resume may change: caps and stopping rules (``max_epochs``,
#: ``max_minutes``, ``patience``), and how the same computation is run or shown (``eval_batch_size``
#: only groups the validation molecules, ``device``, ``progress``, ``tensorboard``).
RESUME_MAY_CHANGE = (
    "max_epochs",
    "max_minutes",
    "patience",
    "eval_batch_size",
    "device",
    "progress",
    "epoch_lines",
    "tensorboard",
)


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite training loss, weights or validation loss; the message names
    the epoch and the optimizer step."""


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run; defaults are the paper's (section 5).

    Attributes:
        rho: force weight of Eq. 5 (Angstrom^2); 0 trains on energies only (forces not computed).
        energy_weight: weight of the energy term of Eq. 5 (1 in the paper); 0 with ``rho > 0`` trains
            on forces only.
        lr: initial Adam learning rate.
        lr_decay: factor the learning rate is multiplied by every ``lr_decay_steps`` steps (smoothly).
        lr_decay_steps: optimizer steps per ``lr_decay``.
        lr_schedule: ``"paper"`` (the smooth decay above, per step) or ``"plateau"`` (SchNetPack's
            default: ``lr`` times ``plateau_factor`` after more than ``plateau_patience`` epochs without
            a lower validation loss, then ``plateau_cooldown`` epochs of rest, never below ``min_lr``;
            ``lr_decay`` and ``lr_decay_steps`` are then unused). See :mod:`pyg_schnet.train.schedules`.
        plateau_factor: factor per reduction of the plateau schedule, in (0, 1).
        plateau_patience: epochs without improvement the plateau schedule waits before a reduction.
        plateau_cooldown: epochs after a reduction before epochs without improvement count again.
        min_lr: the lowest learning rate of the plateau schedule.
        batch_size: molecules per training mini-batch (the global batch, split over the processes of
            a data-parallel run).
        eval_batch_size: molecules per validation / test mini-batch.
        ema_decay: decay of the exponential moving average of the weights, per step.
        patience: stop after this many epochs without a lower validation loss; ``None`` never stops early.
        max_epochs: stop after this many epochs in total (across resumes); ``None`` for no cap.
        max_minutes: stop when the training wall time (across resumes) would pass this; ``None`` for
            no cap. An epoch is not started when the previous one says it would not fit; an epoch that
            runs over anyway is cut short after the step that crosses the cap.
        seed: seeds Python, numpy, torch and the shuffling generator.
        batching: how molecules are batched for the model (:func:`pyg_schnet.train.predict.predict`).
        device: ``'cpu'`` or ``'cuda'`` (or any torch device string).
        progress: show a tqdm bar (only on a terminal).
        epoch_lines: print one line per epoch (errors with their units, elapsed time and an estimate
            of the time left); ``None`` (default): as ``progress``.
        tensorboard: also write a TensorBoard log to ``out_dir/tensorboard`` (needs the
            ``tensorboard`` package: ``pip install tensorboard``).
        head_weights: loss weight :math:`w_h \\ge 0` of each extra head of the model
            (``SchNetConfig.extra_heads``) by name; a head not named gets 1.0, a weight for a head the
            model lacks is refused when the trainer is built. Each adds
            :math:`w_h \\lVert y_h - \\hat y_h \\rVert^2` (the target's unit squared; the three components
            of a dipole summed) to a molecule's loss (:mod:`pyg_schnet.train.heads`).
        stress_weight: weight :math:`w_\\sigma \\ge 0` (Angstrom^6) of the stress term: each periodic
            structure adds :math:`w_\\sigma` times the mean over the nine components of
            :math:`(\\sigma - \\hat\\sigma)^2` (energy unit / Angstrom^3, squared) to its loss
            (:func:`~pyg_schnet.train.loss.per_molecule_loss`); 0 (default) computes no stress. With
            ``stress_weight > 0`` every training and validation structure needs a cell, a periodic axis
            and ``data.stress``; the model trains on sparse batches, in one process, without extra heads.
    """

    rho: float = 100.0
    energy_weight: float = 1.0
    lr: float = 1e-3
    lr_decay: float = 0.96
    lr_decay_steps: int = 100_000
    lr_schedule: str = "paper"
    plateau_factor: float = PLATEAU_DEFAULTS["factor"]
    plateau_patience: int = int(PLATEAU_DEFAULTS["patience"])
    plateau_cooldown: int = int(PLATEAU_DEFAULTS["cooldown"])
    min_lr: float = PLATEAU_DEFAULTS["min_lr"]
    batch_size: int = 32
    eval_batch_size: int = 100
    ema_decay: float = 0.99
    patience: Optional[int] = 100
    max_epochs: Optional[int] = None
    max_minutes: Optional[float] = None
    seed: int = 0
    batching: str = "sparse"
    device: str = "cpu"
    progress: bool = True
    epoch_lines: Optional[bool] = None
    tensorboard: bool = False
    head_weights: Dict[str, float] = field(default_factory=dict)
    stress_weight: float = 0.0

    @property
    def prints_epochs(self) -> bool:
        return self.progress if self.epoch_lines is None else bool(self.epoch_lines)

    def __post_init__(self) -> None:
        """Validate every field (before anything is written): :class:`ValueError` names the field."""
        owner = "TrainConfig"
        check_finite(owner, "rho", self.rho, low=0.0)
        check_finite(owner, "energy_weight", self.energy_weight, low=0.0)
        check_finite(owner, "stress_weight", self.stress_weight, low=0.0)
        if self.energy_weight == 0 and self.rho == 0 and self.stress_weight == 0:
            raise ValueError(f"{owner}: energy_weight = 0 and rho = 0 leave no loss to train on")
        check_finite(owner, "lr", self.lr, low=0.0, low_open=True)
        check_finite(owner, "lr_decay", self.lr_decay, low=0.0, high=1.0, low_open=True)
        check_positive_int(owner, "lr_decay_steps", self.lr_decay_steps)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{owner}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        check_finite(owner, "plateau_factor", self.plateau_factor, low=0.0, high=1.0, low_open=True, high_open=True)
        check_positive_int(owner, "plateau_patience", self.plateau_patience, minimum=0)
        check_positive_int(owner, "plateau_cooldown", self.plateau_cooldown, minimum=0)
        check_finite(owner, "min_lr", self.min_lr, low=0.0)
        check_positive_int(owner, "batch_size", self.batch_size)
        check_positive_int(owner, "eval_batch_size", self.eval_batch_size)
        check_finite(owner, "ema_decay", self.ema_decay, low=0.0, high=1.0)
        if self.patience is not None:
            check_positive_int(owner, "patience (or None)", self.patience)
        if self.max_epochs is not None:
            check_positive_int(owner, "max_epochs (or None)", self.max_epochs, minimum=0)
        if self.max_minutes is not None:
            check_finite(owner, "max_minutes (or None)", self.max_minutes, low=0.0, low_open=True)
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            raise ValueError(f"{owner}: seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:  # what torch.manual_seed and numpy accept
            raise ValueError(f"{owner}: seed must be between 0 and 2**64 - 1, got {self.seed!r}")
        check_batching(self.batching, allow_auto=True)
        check_device(owner, self.device)
        if self.tensorboard:
            require_tensorboard(f"{owner}(tensorboard=True)")
        check_head_weights(owner, self.head_weights)
        self.head_weights = {str(k): float(v) for k, v in self.head_weights.items()}
        self.stress_weight = float(self.stress_weight)
        if self.stress_weight > 0 and self.batching == "dense":
            raise ValueError(
                f"{owner}: stress_weight > 0 computes the stress on sparse batches only (the dense path has no "
                "cell): use batching='sparse' or 'auto'"
            )


def exponential_moving_average(model: nn.Module, decay: float = 0.99) -> AveragedModel:
    """An EMA copy of ``model`` (parameters and float buffers); update with ``.update_parameters(model)``
    after each optimizer step. The first update copies the weights."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return ema.eval()


def adam(parameters: List[nn.Parameter], lr: float) -> torch.optim.Adam:
    """The paper's Adam; fused (one kernel for all parameters) where every parameter is a floating
    tensor on a CPU or CUDA device, which makes the same update as the per-parameter loop to float32
    rounding (``tests/train/test_train_optimizer.py``) at a fraction of its overhead (paper model on
    one CPU thread: 0.3 ms instead of 1.5 ms per step)."""
    fusable = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=True if fusable else None)


class EMAUpdate:
    """The update of an :func:`exponential_moving_average` after an optimizer step, as
    :meth:`AveragedModel.update_parameters` makes it (the same ``torch._foreach_lerp_`` per device and
    dtype, the first update a copy), with the tensor lists built once instead of every step and the
    update count kept on the host (no read of ``n_averaged`` from the device per step)."""

    def __init__(self, ema: AveragedModel, model: nn.Module, decay: float) -> None:
        self.ema = ema
        self.weight = 1.0 - decay
        ema_tensors = [t.detach() for t in itertools.chain(ema.module.parameters(), ema.module.buffers())]
        model_tensors = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
        if len(ema_tensors) != len(model_tensors):
            raise ValueError("the EMA copy and the model have different parameters or buffers")
        groups: Dict[Tuple[torch.device, torch.dtype], Tuple[List[Tensor], List[Tensor]]] = {}
        for a, m in zip(ema_tensors, model_tensors):
            group = groups.setdefault((a.device, a.dtype), ([], []))
            group[0].append(a)
            group[1].append(m.to(a.device))
        self.groups = list(groups.values())
        self.count = int(ema.n_averaged)

    def sync_count(self) -> None:
        """Read the update count from the EMA (after loading a checkpoint)."""
        self.count = int(self.ema.n_averaged)

    @torch.no_grad()
    def __call__(self) -> None:
        for averaged, current in self.groups:
            if self.count == 0:
                torch._foreach_copy_(averaged, current)
            elif averaged[0].is_floating_point():
                torch._foreach_lerp_(averaged, current, self.weight)
            else:  # integer buffers, as get_ema_multi_avg_fn does them
                for a, m in zip(averaged, current):
                    a.copy_(a * (1.0 - self.weight) + m * self.weight)
        self.ema.n_averaged += 1
        self.count += 1


def has_forces(dataset) -> bool:
    """Whether the examples of ``dataset`` carry reference forces (``data.force``)."""
    return len(dataset) > 0 and getattr(dataset[0], "force", None) is not None


def has_stress(dataset) -> bool:
    """Whether the examples of ``dataset`` carry a reference stress (``data.stress``; the first one tells)."""
    return len(dataset) > 0 and getattr(dataset[0], "stress", None) is not None


def check_stress_targets(dataset, name: str) -> None:
    """Raise :class:`ValueError` naming the first example of ``dataset`` (the ``name`` set: training,
    validation, test) that cannot be trained on a stress: no ``stress`` ``[1, 3, 3]`` (finite), or no
    ``cell`` / ``pbc`` with a periodic axis. One pass over the examples."""
    how = "give every structure a cell, pbc and a stress (ASEDataset(stress_key=...)), or set stress_weight=0"
    for index in range(len(dataset)):
        example = dataset[index]
        stress = getattr(example, "stress", None)
        if not isinstance(stress, Tensor):
            raise ValueError(f"stress_weight > 0, but {name} structure {index} has no 'stress': {how}")
        if tuple(stress.shape) not in ((1, 3, 3), (3, 3)):
            raise ValueError(
                f"{name} structure {index}: 'stress' must be [1, 3, 3] (a 3 x 3 matrix), got {tuple(stress.shape)}"
            )
        if not bool(torch.isfinite(stress).all()):
            raise ValueError(f"{name} structure {index}: its 'stress' is not finite ({stress.reshape(3, 3).tolist()})")
        pbc, cell = getattr(example, "pbc", None), getattr(example, "cell", None)
        if not isinstance(pbc, Tensor) or not isinstance(cell, Tensor) or not bool(pbc.any()):
            shown = "none" if not isinstance(pbc, Tensor) else pbc.reshape(-1).tolist()
            raise ValueError(
                f"stress_weight > 0, but {name} structure {index} is not periodic (pbc {shown}): a stress needs a "
                f"periodic cell; {how}"
            )


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns (all plain numbers and strings)."""

    best_val_loss: float
    best_epoch: int
    epochs: int
    steps: int
    elapsed_s: float
    stopped: str
    best_val: Dict[str, float] = field(default_factory=dict)
    #: the batching mode used (``'auto'`` resolved to ``'sparse'`` or ``'dense'``)
    batching: str = "sparse"
    #: the epoch of the checkpoint this run resumed from (``None``: a fresh run)
    resumed_from_epoch: Optional[int] = None


def training_units(
    model: nn.Module, dataset: object, units: Union[str, Mapping[str, str], None] = None
) -> Dict[str, str]:
    """The units a model trained on ``dataset`` predicts in: ``units`` (given), else ``model.units``,
    else the data set's (:func:`~pyg_schnet.datasets.transforms.energy_unit_of`); given or set units
    that contradict the data set's are refused, and so is a run whose units nobody states. A data set
    whose target is no energy (no ``energy_unit``, a ``target_unit`` such as QM9's ``"e*Angstrom"`` for
    mu) names the unit of the model's primary output with its ``target_unit``."""
    from_data = energy_unit_of(dataset)
    if from_data is None and target_unit_of(dataset) is not None and units is None:
        # a target that is no energy (a dipole moment, a polarizability): its own unit names the output's
        return {"energy": str(target_unit_of(dataset)), "length": "Angstrom"}
    if isinstance(units, str):
        units = {"energy": units, "length": "Angstrom"}
    stated = units if units is not None else getattr(model, "units", None)
    if stated is not None:
        checked = check_units(stated, "Trainer(units=...)" if units is not None else "model.units")
        if from_data is not None and not math.isclose(
            unit_value(from_data), unit_value(checked["energy"]), rel_tol=1e-9
        ):
            raise ValueError(
                f"the training energies are in {from_data} (the data set says so) but the model is to predict "
                f"{checked['energy']}: convert the data (pyg_schnet.datasets.ScaleUnits) or state the data's unit"
            )
        return checked
    if from_data is None:
        raise ValueError(
            f"the units of the training energies are unknown (the data set declares none): {HOW_TO_SET_UNITS}"
        )
    return {"energy": from_data, "length": "Angstrom"}


class Trainer:
    """Trains a SchNet on ``train_dataset`` with early stopping on ``val_dataset``.

    Files written to ``out_dir``: ``checkpoint.pt`` (every epoch), ``log.csv`` (every epoch) and
    ``model.pt`` (the EMA weights of the best validation epoch, whenever it improves). The model's
    training domain (elements, structure sizes, closest pair, per-atom energy range of the training set;
    :func:`pyg_schnet.train.domain.training_domain_of`, one pass when the trainer is built) is set as
    ``model.training_domain`` and saved in ``model.pt``.

    When a process group is initialised with more than one process (``torchrun``, see
    :func:`pyg_schnet.train.distributed.init_from_env`), the trainer runs data-parallel: every rank
    builds the same trainer, training batches and validation are sharded, rank 0 alone writes.

    The model's energy standardisation (:mod:`pyg_schnet.train.standardize`) must be set before.

    Args:
        model: the model to train (moved to ``config.device``).
        train_dataset / val_dataset: PyG data sets whose examples hold ``z``, ``pos``, ``energy`` and,
            for force training, ``force``.
        out_dir: folder for checkpoint, log and model.
        config: :class:`TrainConfig`.
        split: optional split indices (``{'train': LongTensor, ...}``) stored in the checkpoint; a resume
            with a different split is refused.
        units: the units of the training energies, ``{"energy": name, "length": "Angstrom"}`` or just
            the energy unit's name (``"eV"``); recorded as ``model.units`` and in ``model.pt``. ``None``
            takes them from ``model.units`` or from the data set
            (:func:`pyg_schnet.datasets.transforms.energy_unit_of`); when neither says, or they
            disagree, :class:`ValueError` before anything is trained.
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset,
        val_dataset,
        out_dir: os.PathLike | str,
        config: Optional[TrainConfig] = None,
        split: Optional[Dict[str, Tensor]] = None,
        units: Union[str, Mapping[str, str], None] = None,
    ) -> None:
        self.config = config or TrainConfig()
        if len(train_dataset) == 0:
            raise ValueError("the training set is empty")
        if len(val_dataset) == 0:
            raise ValueError("the validation set is empty")
        check_target_kind(model, train_dataset)
        model.units = training_units(model, train_dataset, units)
        # what the model is trained on (elements, sizes, energy range), saved with it in model.pt
        model.training_domain = training_domain_of(train_dataset)
        # training steps run with trusted inputs (no per-step device reads): the one check they skip
        # that load-time validation does not cover is the model's own range of atomic numbers
        max_z = (getattr(model, "config", None) or {}).get("max_z")
        if max_z is not None and model.training_domain.elements and max(model.training_domain.elements) >= max_z:
            raise ValueError(
                f"the training set holds atomic number {max(model.training_domain.elements)}, but the model "
                f"embeds 1 .. {max_z - 1} (max_z = {max_z}); build it with a larger max_z"
            )
        self.device = torch.device(self.config.device)
        self.model = model.to(self.device)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.out_dir = Path(out_dir)
        self.split = {k: torch.as_tensor(v, dtype=torch.long).cpu() for k, v in (split or {}).items()}
        self.train_forces = self.config.rho > 0
        if self.train_forces and not has_forces(train_dataset):
            raise ValueError(f"rho = {self.config.rho} needs forces, but the training examples have no 'force'")
        self.eval_forces = has_forces(val_dataset)
        #: whether the loss has the stress term (``config.stress_weight > 0``); the stress is then validated too
        self.train_stress = self.config.stress_weight > 0
        #: this process's place in a data-parallel run (one process without ``torchrun``)
        self.dist = distributed.current()
        #: the loss weight of every extra head of the model (``config.head_weights``, 1.0 by default)
        self.head_weights: Dict[str, float] = resolve_head_weights(model, self.config.head_weights)
        #: the extra heads trained (a non-zero weight), name -> kind
        self.train_heads: Dict[str, str] = {
            name: kind for name, kind in extra_head_kinds(model).items() if self.head_weights[name] > 0
        }
        for name in self.train_heads:
            if getattr(train_dataset[0], name, None) is None:
                raise ValueError(
                    f"head {name!r} ({self.train_heads[name]}) is trained on data.{name}, but the training "
                    f"examples have no field {name!r}: give them the target, or set "
                    f"TrainConfig(head_weights={{{name!r}: 0.0}})"
                )
        #: the extra heads validated and tested: those whose target the validation examples hold
        self.eval_heads: Dict[str, str] = {
            name: kind
            for name, kind in extra_head_kinds(model).items()
            if getattr(val_dataset[0], name, None) is not None
        }
        missing = sorted(set(self.train_heads) - set(self.eval_heads))
        if missing:
            raise ValueError(f"the validation examples lack the targets of the trained heads {missing}")
        if extra_head_kinds(model):
            if self.dist.enabled:
                raise ValueError(
                    "data-parallel training (torchrun) of a model with extra heads is not supported; "
                    "train it in one process"
                )
            if self.config.batching == "dense":
                raise ValueError(
                    "a model with extra heads trains on sparse batches only (the dense path computes the "
                    "primary output alone): use batching='sparse' or 'auto'"
                )
        if self.train_stress:
            self._check_stress_training(model, train_dataset, val_dataset)
        #: the columns of ``log.csv``: :data:`LOG_COLUMNS`, then the extra heads' errors and the stress's
        self.log_columns: Tuple[str, ...] = (
            LOG_COLUMNS
            + tuple(
                column
                for name in self.eval_heads
                for column in (f"train_{name}_mae", f"val_{name}_mae", f"val_{name}_rmse")
            )
            + (STRESS_LOG_COLUMNS if self.train_stress else ())
        )

        self.generator = torch.Generator()
        self.generator.manual_seed(self.config.seed)
        if self.dist.enabled:
            self.train_loader = distributed.ShardedBatches(
                train_dataset, self.config.batch_size, self.generator, self.dist
            )
        else:
            self.train_loader = DataLoader(
                train_dataset, batch_size=self.config.batch_size, shuffle=True, generator=self.generator
            )
        self.val_loader = DataLoader(
            distributed.shard(val_dataset, self.dist), batch_size=self.config.eval_batch_size, shuffle=False
        )
        #: the batching mode in use; ``'auto'`` is resolved when :meth:`fit` starts
        self.batching: str = self.config.batching
        self.optimizer = adam(list(self.model.parameters()), self.config.lr)
        cfg = self.config
        self.scheduler: LRSchedule = (
            plateau_lr_schedule(
                self.optimizer, cfg.plateau_factor, cfg.plateau_patience, cfg.min_lr, cfg.plateau_cooldown
            )
            if cfg.lr_schedule == "plateau"
            else paper_lr_schedule(self.optimizer, cfg.lr_decay, cfg.lr_decay_steps)
        )
        #: the paper's schedule steps after every optimizer step, the plateau schedule once per epoch
        self._schedule_per_step = steps_per_batch(self.scheduler)
        self.ema = exponential_moving_average(self.model, self.config.ema_decay)
        self.ema_update = EMAUpdate(self.ema, self.model, self.config.ema_decay)
        #: DDP around the loss of the model in data-parallel runs (else ``None``)
        self.ddp = (
            distributed.wrap_model(self.model, self.dist, self.config.rho, self.config.energy_weight)
            if self.dist.enabled
            else None
        )

        self.step = 0
        self.epoch = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.best_val: Dict[str, float] = {}
        self.best_state: Optional[Dict[str, Tensor]] = None
        self.epochs_without_improvement = 0
        self.elapsed_s = 0.0
        self.history: List[Dict[str, float]] = []
        self.stopped = ""
        self._log_synced = False
        #: the TensorBoard log while :meth:`fit` runs (rank 0, ``config.tensorboard``), else ``None``
        self.tensorboard: Optional[TensorBoardLog] = None
        #: the extra heads' outputs and targets of the last training step (detached), for the epoch's errors
        self._step_heads: Tuple[Dict[str, Tensor], Dict[str, Tensor]] = ({}, {})
        #: the predicted and reference stress of the last training step (detached; stress training only)
        self._step_stress: Tuple[Optional[Tensor], Optional[Tensor]] = (None, None)

    def _check_stress_training(self, model: nn.Module, train_dataset, val_dataset) -> None:
        """What ``stress_weight > 0`` needs, checked before anything is trained or written."""
        weight = self.config.stress_weight
        if extra_head_kinds(model):
            raise ValueError(
                f"stress_weight = {weight:g} trains the stress of the energy alone; this model has extra heads "
                f"({', '.join(extra_head_kinds(model))}): train them without the stress term"
            )
        output = getattr(getattr(model, "settings", None), "output", "extensive")
        if output != "extensive":
            raise ValueError(
                f"stress_weight = {weight:g}: a stress is the strain derivative of an extensive energy, but the "
                f"model's primary output is {output!r}"
            )
        if self.dist.enabled:
            raise ValueError(
                f"stress_weight = {weight:g}: data-parallel training (torchrun) with a stress term is not "
                "supported; train it in one process"
            )
        check_stress_targets(train_dataset, "training")
        check_stress_targets(val_dataset, "validation")

    # ------------------------------------------------------------------------------------ files
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.csv"

    @property
    def model_path(self) -> Path:
        return self.out_dir / "model.pt"

    @property
    def tensorboard_dir(self) -> Path:
        return self.out_dir / "tensorboard"

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Everything a resume needs; tensors, dicts, lists, numbers and strings only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": dict(self.model.config),
            "train_config": asdict(self.config),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.generator),
            "step": self.step,
            "epoch": self.epoch,
            "split": self.split,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_val": dict(self.best_val),
            "epochs_without_improvement": self.epochs_without_improvement,
            "elapsed_s": self.elapsed_s,
            "history": list(self.history),
            "stopped": self.stopped,
            "batching": self.batching,
        }

    def save_checkpoint(self) -> Path:
        """Write :meth:`state_dict` with its checksum (:func:`~.checkpoint.seal`) atomically (an
        :class:`OSError` such as a full disk names the file and leaves the previous checkpoint)."""
        return write_payload(seal(self.state_dict()), self.checkpoint_path, "checkpoint")

    def load_checkpoint(self, path: Optional[os.PathLike | str] = None) -> None:
        """Restores a :meth:`state_dict` written by :meth:`save_checkpoint` (weights-only load,
        checksum verified).

        Raises:
            ValueError: a damaged file, or a model config, split or :data:`RESUME_FIXED` setting that
                differs from this run's (each differing field listed as ``old -> new``).
        """
        path = Path(path) if path is not None else self.checkpoint_path
        state = load_verified(path, CHECKPOINT_FORMATS, map_location=self.device, what="checkpoint.pt")
        changed = _changed_fields(state["model_config"], dict(self.model.config))
        if changed:
            raise ValueError(f"{path}: the checkpoint's model differs from this run's: {changed}")
        saved = {**RESUME_LEGACY_DEFAULTS, **(state.get("train_config") or {})}
        changed = _changed_fields({k: saved[k] for k in RESUME_FIXED if k in saved}, asdict(self.config))
        if changed:
            raise ValueError(
                f"{path}: a resume must keep the settings the checkpoint was trained with, but this run "
                f"changes {changed}. Resume with the checkpoint's values, or start a new run in another "
                f"output folder (a resume may change only {', '.join(RESUME_MAY_CHANGE)})"
            )
        saved_split = state.get("split") or {}
        if set(saved_split) != set(self.split) or any(
            not torch.equal(saved_split[k].cpu(), self.split[k]) for k in self.split
        ):
            raise ValueError(f"{path}: the checkpoint's split indices differ from this run's split")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.ema_update.sync_count()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], self.generator)
        self.best_state = state["best_model"]
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.best_val_loss = float(state["best_val_loss"])
        self.best_epoch = int(state["best_epoch"])
        self.best_val = dict(state["best_val"])
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
        self.elapsed_s = float(state["elapsed_s"])
        self.history = list(state["history"])
        self.stopped = str(state["stopped"])
        if state.get("batching") in BATCHING_MODES:  # 'auto' keeps the mode it resolved to
            self.batching = str(state["batching"])

    # ---------------------------------------------------------------------------------- models
    def best_model(self) -> nn.Module:
        """A copy of the model holding the EMA weights of the best validation epoch (eval mode);
        the current EMA weights before the first validation."""
        model = copy.deepcopy(self.ema.module)
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model.eval()

    def evaluate(self, dataset, model: Optional[nn.Module] = None, keep_predictions: bool = False) -> ErrorAccumulator:
        """Errors of ``model`` (default: :meth:`best_model`) on ``dataset``; forces when it has them, and
        the extra heads whose targets it holds.

        In a data-parallel run this is a collective: every rank must call it (each evaluates its
        shard; the sums are all-reduced, predictions gathered on rank 0)."""
        model = model if model is not None else self.best_model()
        loader = DataLoader(
            distributed.shard(dataset, self.dist), batch_size=self.config.eval_batch_size, shuffle=False
        )
        heads = {name: kind for name, kind in self.eval_heads.items() if getattr(dataset[0], name, None) is not None}
        with_stress = self.train_stress and has_stress(dataset)
        if with_stress:
            check_stress_targets(dataset, "evaluated")
        acc = evaluate(
            model,
            loader,
            with_forces=has_forces(dataset),
            rho=self.config.rho,
            device=self.device,
            batching=self.batching,
            keep_predictions=keep_predictions,
            energy_weight=self.config.energy_weight,
            heads=heads,
            head_weights=self.head_weights,
            with_stress=with_stress,
            stress_weight=self.config.stress_weight,
        )
        return distributed.reduce_errors(acc, self.dist)

    # -------------------------------------------------------------------------------- training
    def _train_step(self, batch) -> tuple:
        if self.train_stress:
            return self._optimizer_step(*self._stress_loss(batch))
        if self.ddp is not None:  # batch is this rank's LocalBatch; None below when its slice is empty
            batch, loss, energy, forces = distributed.shard_loss(self.ddp, batch, self.dist, self.device, self.batching)
        else:
            layout = HostLayout.of_batch(batch)  # sizes and pair distances on the host, before the transfer
            batch = batch.to(self.device)
            with trusted_inputs():  # validated at load time (AtomsTable.validate) and in __init__
                energy, forces, outputs = predict_outputs(
                    self.model, batch, self.train_forces, self.batching, layout, self.eval_heads
                )
            num_graphs = energy.reshape(-1).numel()
            targets = {name: head_target(batch, name, kind, num_graphs) for name, kind in self.eval_heads.items()}
            self._step_heads = (
                {k: v.detach() for k, v in outputs.items()},
                {k: v.detach() for k, v in targets.items()},
            )
            loss = energy_force_loss(
                energy,
                batch.energy,
                batch.batch,
                self.config.rho,
                forces,
                batch.force if self.train_forces else None,
                self.config.energy_weight,
                head_outputs=outputs,
                head_targets=targets,
                head_weights={name: self.head_weights[name] for name in self.train_heads},
            )
        return self._optimizer_step(batch, energy, forces, loss)

    def _stress_loss(self, batch) -> Tuple[Any, Tensor, Tensor, Tensor]:
        """``(batch on the device, energy, forces, loss)`` of a training step with the stress term (one
        process, sparse batches, no extra heads: checked in ``__init__``)."""
        batch = batch.to(self.device)
        energy, forces, stress = predict_with_stress(self.model, batch)
        self._step_stress = (stress.detach(), batch.stress)
        loss = energy_force_loss(
            energy,
            batch.energy,
            batch.batch,
            self.config.rho,
            forces,
            batch.force if self.train_forces else None,
            self.config.energy_weight,
            stress_pred=stress,
            stress_true=batch.stress,
            stress_weight=self.config.stress_weight,
        )
        return batch, energy, forces if self.train_forces else None, loss

    def _optimizer_step(self, batch, energy: Optional[Tensor], forces: Optional[Tensor], loss: Tensor) -> tuple:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self._schedule_per_step:
            self.scheduler.step()
        self.ema_update()
        self.step += 1
        return (
            batch,
            None if energy is None else energy.detach(),
            None if forces is None else forces.detach(),
            loss.detach(),
        )

    def _epoch_line(self, train: Dict[str, float], val: Dict[str, float], improved: bool) -> str:
        """One line per epoch: errors in the model's units, ``*`` for a new best validation loss, the
        training time so far and, when a cap bounds the run, an estimate of the time left."""
        energy = (getattr(self.model, "units", None) or {}).get("energy", "energy units")
        force = f"{energy}/A"
        line = (
            f"epoch {self.epoch:5d} step {self.step:8d} lr {self.history[-1]['lr']:.3e} "
            f"train loss {train['loss']:.4g} | val E_mae {val['energy_mae']:.4f} {energy}"
            + (f", F_mae {val['force_mae']:.4f} {force}" if math.isfinite(val["force_mae"]) else "")
            + "".join(f", {name}_mae {val[f'{name}_mae']:.4g}" for name in self.eval_heads)
            + (f", S_mae {val['stress_mae']:.4g} {energy}/A^3" if "stress_mae" in val else "")
            + f", loss {val['loss']:.4g}"
            + (" *" if improved else "")
            + f" | {self.elapsed_s / 60:.1f} min"
        )
        left = self._estimated_minutes_left()
        return line + (f", about {left:.1f} min left" if left is not None else "")

    def _estimated_minutes_left(self) -> Optional[float]:
        """Minutes until a cap stops the run: ``max_minutes`` minus the training time, or the epochs left
        to ``max_epochs`` at the mean epoch time so far, whichever is sooner; ``None`` without a cap
        (early stopping cannot be foreseen)."""
        estimates = []
        if self.config.max_minutes is not None:
            estimates.append(max(self.config.max_minutes - self.elapsed_s / 60.0, 0.0))
        if self.config.max_epochs is not None and self.epoch > 0:
            per_epoch = self.elapsed_s / max(len(self.history), 1) / 60.0
            estimates.append(max(self.config.max_epochs - self.epoch, 0) * per_epoch)
        return min(estimates) if estimates else None

    def _time_left_s(self, run_start: float) -> float:
        if self.config.max_minutes is None:
            return math.inf
        return self.config.max_minutes * 60.0 - (self.elapsed_s + time.monotonic() - run_start)

    def _train_epoch(self, run_start: float) -> tuple:
        self.model.train()
        acc = ErrorAccumulator(
            rho=self.config.rho,
            energy_weight=self.config.energy_weight,
            heads=self.eval_heads,
            head_weights={name: self.head_weights[name] for name in self.train_heads},
            stress=self.train_stress,
            stress_weight=self.config.stress_weight,
        )
        cut_short = False
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            dynamic_ncols=True,
            disable=None if self.config.progress and self.dist.is_main else True,
            mininterval=0.5,
        )
        watch = FirstNonFinite()
        for i, batch in enumerate(bar):
            batch, energy, forces, loss = self._train_step(batch)
            if batch is not None:  # None: this rank's slice of the global batch was empty
                outputs, targets = self._step_heads
                stress_pred, stress_true = self._step_stress if self.train_stress else (None, None)
                acc.update(
                    energy,
                    batch.energy,
                    batch.batch,
                    forces,
                    batch.force if forces is not None else None,
                    head_outputs=outputs,
                    head_targets=targets,
                    stress_pred=stress_pred,
                    stress_true=stress_true,
                )
            # data-parallel: the loss of the whole global batch (all-reduced), so all ranks stop together
            watch.add(distributed.global_batch_loss(loss, self.dist))
            if i % NON_FINITE_CHECK_EVERY == 0:  # the one read of the device in these steps
                self._raise_if_non_finite(watch, bar)
            if i % 10 == 0 and acc.num_molecules > 0 and not bar.disable:
                m = acc.compute()
                postfix = {"loss": f"{m['loss']:.4g}", "E_mae": f"{m['energy_mae']:.3g}"}
                if math.isfinite(m["force_mae"]):
                    postfix["F_mae"] = f"{m['force_mae']:.3g}"
                bar.set_postfix(postfix)
            if self.config.max_minutes is not None and distributed.broadcast_flag(
                self._time_left_s(run_start) <= 0, self.dist
            ):
                cut_short = True
                break
        self._raise_if_non_finite(watch, bar)
        bar.close()
        return distributed.reduce_errors(acc, self.dist).compute(), cut_short

    def _raise_if_non_finite(self, watch: "FirstNonFinite", bar) -> None:
        """Raise :class:`NonFiniteError` for the first mini-batch of this epoch whose loss was not finite."""
        first = watch.first()
        if first is None:
            return
        index, value = first
        bar.close()
        raise self._non_finite(
            f"the training loss is {value} (mini-batch {index} of the epoch)",
            self.train_dataset,
            "training",
            step=self.step - (watch.count - index),
        )

    @staticmethod
    def _log_row(row: Dict[str, Any]) -> Dict[str, Any]:
        return {k: f"{v:.10g}" if isinstance(v, float) else v for k, v in row.items()}

    def _write_log(self) -> None:
        """The first call of a run rewrites ``log.csv`` from the history (atomically, dropping rows of
        an epoch a killed run did not checkpoint); later calls append the newest row."""
        if self._log_synced and self.log_path.exists():
            with open(self.log_path, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.log_columns, extrasaction="ignore").writerow(
                    self._log_row(self.history[-1])
                )
            return

        def write(handle) -> None:
            writer = csv.DictWriter(handle, fieldnames=self.log_columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.history:
                writer.writerow(self._log_row(row))

        atomic_write(self.log_path, write, binary=False)
        self._log_synced = True

    def _non_finite(self, what: str, dataset=None, name: str = "", step: Optional[int] = None) -> NonFiniteError:
        """The error for a non-finite ``what`` at the current epoch and step (or ``step``), naming the
        first example of ``dataset`` with a non-finite target or position when there is one."""
        hint = _first_non_finite_example(dataset, name) if dataset is not None else ""
        return NonFiniteError(
            f"training stopped at epoch {self.epoch + 1}, step {self.step if step is None else step}: {what}. "
            + (
                hint
                or "Typical causes: a learning rate too high, or absurd energies, forces or coordinates in the data. "
            )
            + (
                f"Nothing was written for this epoch: {self.checkpoint_path.name} holds epoch {self.epoch}"
                + (f", {self.model_path.name} the best epoch {self.best_epoch}." if self.best_epoch else ".")
                if self.epoch
                else "Nothing was written: no epoch completed."
            )
        )

    def _check_weights(self) -> None:
        """Raise :class:`NonFiniteError` naming the first parameter with a non-finite entry."""
        params = list(self.model.named_parameters())
        finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
        if not bool(finite.all()):
            name = params[int((~finite).nonzero()[0])][0]
            raise self._non_finite(f"the weights became non-finite (first: {name})")

    def _stop_reason(self, run_start: float, last_epoch_s: Optional[float]) -> str:
        cfg = self.config
        if cfg.max_epochs is not None and self.epoch >= cfg.max_epochs:
            return "max_epochs"
        if cfg.patience is not None and self.epochs_without_improvement >= cfg.patience:
            return "early_stopping"
        left = self._time_left_s(run_start)
        if left <= 0 or (last_epoch_s is not None and last_epoch_s > left):
            return "max_minutes"
        return ""

    def _resolve_batching(self) -> None:
        """Turn ``batching='auto'`` into the faster of sparse and dense for this data, measured on a
        few training batches (unshuffled, so the seeded random streams are untouched), and log it."""
        if self.batching != "auto":
            return
        if self.train_stress:  # the stress is computed on sparse batches only
            self.batching = "sparse"
            if self.dist.is_main:
                print("batching auto: training on the stress -> using sparse")
            return
        if extra_head_kinds(self.model):  # extra heads are computed on sparse batches only
            self.batching = "sparse"
            if self.dist.is_main:
                print("batching auto: the model has extra heads -> using sparse")
            return
        sample = DataLoader(self.train_loader.dataset, batch_size=self.config.batch_size, shuffle=False)
        timings = measure_batching(self.model, sample, with_forces=self.train_forces)
        timings = distributed.broadcast_object(timings, self.dist)  # every rank takes rank 0's choice
        self.batching = min(BATCHING_MODES, key=lambda mode: timings[mode])
        if self.dist.is_main:
            print(
                "batching auto: "
                + ", ".join(f"{m} {timings[m] * 1e3:.2f} ms/molecule" for m in BATCHING_MODES)
                + f" -> using {self.batching}"
            )

    def fit(self, resume: bool = False) -> FitResult:
        """Trains until early stopping or a cap; with ``resume`` first loads ``checkpoint.pt``
        (a fresh run when it does not exist yet).

        In a data-parallel run every rank calls this; rank 0 alone writes, every rank reads the
        checkpoint (``out_dir`` must be on a file system all ranks see) and all stop together.
        Rank 0 holds the output folder's :class:`~pyg_schnet.io.run_lock.RunLock` while it trains, so a
        second run into the same folder is refused (re-entrant under ``run_experiment``, which takes it
        first)."""
        try:
            if not self.dist.is_main:
                return self._fit(resume)
            with RunLock(self.out_dir):
                return self._fit(resume)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None

    def _fit(self, resume: bool) -> FitResult:
        main = self.dist.is_main
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if main:  # rank 0 alone writes here, so it alone clears what killed writers left
            for stale in remove_stale_temporaries(self.out_dir):
                print(f"removed {stale}, a temporary file a killed run left behind")
        resuming = distributed.broadcast_object(resume and self.checkpoint_path.exists(), self.dist)
        resumed_from_epoch: Optional[int] = None
        if resuming:
            self.load_checkpoint()
            resumed_from_epoch = self.epoch
        self._resolve_batching()
        if resuming:
            if self.config.prints_epochs and main:
                print(f"resumed from {self.checkpoint_path} at epoch {self.epoch}, step {self.step}")
        else:
            seed_everything(self.config.seed)
            self.generator.manual_seed(self.config.seed)
        if self.config.tensorboard and main:
            # a resume hides what a killed run logged after its checkpoint, a fresh run an earlier run's log
            self.tensorboard = TensorBoardLog(self.tensorboard_dir, purge_step=self.step + 1 if resuming else 0)
        run_start = time.monotonic()
        last_epoch_s: Optional[float] = self.history[-1]["epoch_s"] if self.history else None
        while True:
            # rank 0 decides (its clock), so every rank stops in the same epoch
            self.stopped = distributed.broadcast_object(self._stop_reason(run_start, last_epoch_s), self.dist)
            if self.stopped:
                break
            epoch_start = time.monotonic()
            train, cut_short = self._train_epoch(run_start)
            self._check_weights()
            val = distributed.reduce_errors(
                evaluate(
                    self.ema.module,
                    self.val_loader,
                    with_forces=self.eval_forces,
                    rho=self.config.rho,
                    device=self.device,
                    batching=self.batching,
                    energy_weight=self.config.energy_weight,
                    heads=self.eval_heads,
                    head_weights={name: self.head_weights[name] for name in self.train_heads},
                    with_stress=self.train_stress,
                    stress_weight=self.config.stress_weight,
                ),
                self.dist,
            ).compute()
            if not math.isfinite(val["loss"]):
                raise self._non_finite(
                    f"the validation loss is {val['loss']} with finite weights (energy MAE {val['energy_mae']})",
                    self.val_dataset,
                    "validation",
                )
            self.epoch += 1
            if not self._schedule_per_step:  # the plateau schedule: once per epoch, on the validation loss
                self.scheduler.step(val["loss"])
            improved = val["loss"] < self.best_val_loss
            if improved:
                self.best_val_loss = val["loss"]
                self.best_epoch = self.epoch
                self.best_val = dict(val)
                self.best_state = {k: v.detach().clone() for k, v in self.ema.module.state_dict().items()}
                self.epochs_without_improvement = 0
            else:
                self.epochs_without_improvement += 1
            now = time.monotonic()
            last_epoch_s = now - epoch_start
            self.elapsed_s += now - run_start
            run_start = now
            self.history.append(
                {
                    "epoch": self.epoch,
                    "step": self.step,
                    "lr": current_lr(self.scheduler),
                    "train_loss": train["loss"],
                    "train_energy_mae": train["energy_mae"],
                    "train_force_mae": train["force_mae"],
                    "val_loss": val["loss"],
                    "val_energy_mae": val["energy_mae"],
                    "val_energy_rmse": val["energy_rmse"],
                    "val_force_mae": val["force_mae"],
                    "val_force_rmse": val["force_rmse"],
                    "best_val_loss": self.best_val_loss,
                    "epoch_s": last_epoch_s,
                    "elapsed_s": self.elapsed_s,
                    **{
                        column: value
                        for name in self.eval_heads
                        for column, value in (
                            (f"train_{name}_mae", train[f"{name}_mae"]),
                            (f"val_{name}_mae", val[f"{name}_mae"]),
                            (f"val_{name}_rmse", val[f"{name}_rmse"]),
                        )
                    },
                    **(
                        {
                            "train_stress_mae": train["stress_mae"],
                            "val_stress_mae": val["stress_mae"],
                            "val_stress_rmse": val["stress_rmse"],
                        }
                        if self.train_stress
                        else {}
                    ),
                }
            )
            if improved and main:
                save_model(self.best_model(), self.model_path)
            if cut_short:
                self.stopped = "max_minutes"
            if main:
                self.save_checkpoint()
                self._write_log()
                if self.tensorboard is not None:
                    self.tensorboard.epoch(
                        self.history[-1],
                        train,
                        self.config.rho,
                        self.config.energy_weight,
                        heads={name: self.head_weights[name] for name in self.eval_heads},
                        kinds=self.eval_heads,
                        stress_weight=self.config.stress_weight if self.train_stress else 0.0,
                    )
            if self.config.prints_epochs and main:
                tqdm.write(self._epoch_line(train, val, improved))
            if cut_short:
                break
        if main:
            if self.best_state is not None and not self.model_path.exists():
                save_model(self.best_model(), self.model_path)
            self.save_checkpoint()
        return FitResult(
            best_val_loss=self.best_val_loss,
            best_epoch=self.best_epoch,
            epochs=self.epoch,
            steps=self.step,
            elapsed_s=self.elapsed_s,
            stopped=self.stopped,
            best_val=dict(self.best_val),
            batching=self.batching,
            resumed_from_epoch=resumed_from_epoch,
        )


def _changed_fields(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    """``'lr 0.001 -> 0.01, rho 100.0 -> 0.0'`` for the keys of ``old`` whose value differs in ``new``
    (empty when none does)."""
    return ", ".join(f"{k} {old[k]!r} -> {new.get(k)!r}" for k in old if new.get(k) != old[k])


def _first_non_finite_example(dataset, name: str) -> str:
    """``'The first non-finite value in the training data: example 17, field 'energy'. '`` or ``''``."""
    for index in range(len(dataset)):
        example = dataset[index]
        for key in ("energy", "force", "stress", "pos"):
            value = getattr(example, key, None)
            if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return f"The first non-finite value in the {name} data: example {index}, field {key!r}. "
    return ""
