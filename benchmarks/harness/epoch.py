"""One training epoch end to end, as each implementation's own training code runs it.

An *epoch* is one pass of shuffled mini-batches over the training frames (forward, Eq. 5 loss with
forces ``F = -dE/dR`` kept in the graph, backward, Adam step), then one validation pass (energies and
forces of every validation frame, no gradient step). Per implementation the run is timed in parts:

- ``processing_s``: the data set built from the MD17 ``.npz`` (once per data set, not per epoch);
- ``setup_s``: split, model, standardisation, optimiser, loaders, the framework's start-up, up to the
  first training batch;
- ``train_s`` and ``val_s``: the epoch, data loading (collation, per-frame transforms) included;
- ``total_s``: everything, from reading the ``.npz`` to the end of the run (files written after the epoch
  included);
- ``loading_s`` (after the run, not part of it): one pass over the run's own training and validation
  loaders without the model, i.e. how much of the epoch is data loading (collation, per-frame transforms
  such as SchNetPack's neighbour lists).

The three runners:

- :func:`run_ours`: :class:`pyg_schnet.train.Trainer` built as ``benchmarks/md17.py`` builds it
  (:mod:`pyg_schnet.experiments.protocols.md17` flags, :class:`pyg_schnet.datasets.MD17`, the seeded split,
  :meth:`SchNet.from_paper`, :func:`standardize_model`), ``fit()`` with ``--max-epochs 1``; the epoch is the
  trainer's own ``epoch_s`` (training epoch and validation of the EMA weights), the training part is timed
  around the trainer's epoch method.
- :func:`run_schnetpack`: SchNetPack's training stack: ``ASEAtomsData`` written from the same frames,
  ``AtomsDataModule`` with the same split (a split file) and the transforms of its ``md17`` experiment
  config (centre of mass, mean energy offset, matscipy neighbour list, cast to float32),
  ``representation.SchNet`` + ``Atomwise`` + ``Forces`` in a ``NeuralNetworkPotential``, ``AtomisticTask``
  with MSE losses weighted 1 (energy) and ``rho`` (forces), which is Eq. 5, its EMA callback, and
  ``pytorch_lightning.Trainer(max_epochs=1)`` without logger, checkpoints or progress bar.
- :func:`run_pyg`: PyG ships no training code for its SchNet (its examples only evaluate pretrained QM9
  weights), so ``torch_geometric.nn.models.SchNet`` (:class:`harness.adapters.PyGSchNet`: our pairs and
  gamma) runs in the minimal standard loop: ``torch_geometric.loader.DataLoader``, Adam, autograd forces
  with ``create_graph=True``, a validation pass; no EMA, no checkpoint.

All use the same frames, split, batch sizes (32 training, 100 validation), learning rate, ``rho``,
float32 and the threads the caller set.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from harness.adapters import PyGSchNet, set_schnetpack_gaussians
from harness.configs import PAPER
from harness.schnetpack_import import import_schnetpack
from pyg_schnet.datasets import MD17, random_split
from pyg_schnet.datasets.raw_files import raw_file_link
from pyg_schnet.experiments.protocols.md17 import build_parser, md17_split_sizes, raw_file_name
from pyg_schnet.experiments.runner import check_arguments, model_overrides
from pyg_schnet.models.schnet import SchNet
from pyg_schnet.train.standardize import energy_statistics, standardize_model
from pyg_schnet.train.state import seed_everything
from pyg_schnet.train.trainer import Trainer

#: Implementations in the order they are interleaved.
IMPLS = ("ours", "schnetpack", "pyg")
LABELS = {
    "ours": "pyg-schnet `Trainer` (benchmarks/md17.py)",
    "schnetpack": "SchNetPack 2.1 `AtomisticTask` + Lightning `Trainer`",
    "pyg": "PyG's SchNet in a minimal loop (PyG has no training code of its own)",
}
#: The timed parts of a run, in seconds.
PARTS = ("processing_s", "setup_s", "train_s", "val_s", "epoch_s", "total_s", "loading_s")


@dataclass(frozen=True)
class EpochSetting:
    """What every implementation trains on: the MD17 file, the split sizes and the paper's settings."""

    npz: Path
    n_train: int
    n_val: int
    seed: int = 0
    batch_size: int = 32
    eval_batch_size: int = 100
    lr: float = 1e-3
    rho: float = 100.0
    threads: int = 1


@dataclass
class EpochRun:
    """The parts of one run (seconds, see the module docstring); ``val_energy_mae`` in kcal/mol checks that
    the run trained and validated what it should (a first epoch's error, not a result)."""

    impl: str
    processing_s: float
    setup_s: float
    train_s: float
    val_s: float
    total_s: float
    loading_s: float
    steps: int
    val_energy_mae: float
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def epoch_s(self) -> float:
        return self.train_s + self.val_s

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "epoch_s": self.epoch_s}


# ------------------------------------------------------------------------------------------ data
def load_frames(npz: Path) -> Dict[str, np.ndarray]:
    """``z [n]``, ``R [M, n, 3]`` (Angstrom), ``E [M]`` (kcal/mol), ``F [M, n, 3]`` (kcal/mol/A) of an MD17 file."""
    with np.load(npz) as f:
        return {
            "z": np.asarray(f["z"], dtype=np.int64),
            "R": np.asarray(f["R"], dtype=np.float64),
            "E": np.asarray(f["E"], dtype=np.float64).reshape(-1),
            "F": np.asarray(f["F"], dtype=np.float64),
        }


def split_indices(setting: EpochSetting, num_frames: int) -> Dict[str, np.ndarray]:
    """The split ``benchmarks/md17.py`` draws for these sizes and seed (:func:`md17_split_sizes`,
    :func:`pyg_schnet.datasets.random_split`); :func:`run_ours` checks that its data set draws the same."""
    n_train, n_val, n_test, _ = md17_split_sizes(num_frames, setting.n_train, setting.n_val)
    split = random_split(num_frames, n_train, n_val=n_val, seed=setting.seed, n_test=n_test)
    return {"train": split.train.numpy(), "val": split.val.numpy(), "test": split.test.numpy()}


class _Clock:
    """Named time stamps (``time.perf_counter``) relative to the start of a run."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: Dict[str, float] = {}

    def mark(self, name: str) -> float:
        self.marks[name] = time.perf_counter() - self.start
        return self.marks[name]


def loader_pass_s(*loaders: Iterable[Any]) -> float:
    """Seconds to draw every batch of ``loaders`` once (no model): the data loading of an epoch."""
    started = time.perf_counter()
    for loader in loaders:
        for _ in loader:
            pass
    return time.perf_counter() - started


@contextlib.contextmanager
def _frameworks_quiet() -> Iterator[None]:
    """Lightning's start-up lines and its hints (few data-loader workers, no logger) off the terminal
    (SchNetPack's progress bar of its pass over the training set for the mean energy stays)."""
    names = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "schnetpack")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# ------------------------------------------------------------------------------------------ ours
def run_ours(setting: EpochSetting, work: Path) -> EpochRun:
    """``benchmarks/md17.py``'s data set, split, model and :class:`Trainer`, ``fit()`` for one epoch."""
    clock = _Clock()
    args = build_parser().parse_args(
        [
            *("--raw-file", str(setting.npz), "--root", str(work / "data"), "--out", str(work / "run")),
            *("--n-train", str(setting.n_train), "--n-val", str(setting.n_val), "--seed", str(setting.seed)),
            *("--batch-size", str(setting.batch_size), "--eval-batch-size", str(setting.eval_batch_size)),
            *("--lr", str(setting.lr), "--rho", str(setting.rho), "--threads", str(setting.threads)),
            *("--max-epochs", "1", "--device", "cpu", "--quiet"),
        ]
    )
    config = check_arguments(args, args.rho)
    with raw_file_link(args.raw_file, args.root, raw_file_name(args.molecule)):
        dataset = MD17(args.root, args.molecule)
    processing_s = clock.mark("processed")

    n_train, n_val, n_test, _ = md17_split_sizes(len(dataset), args.n_train, args.n_val, args.n_test)
    split = dataset.random_split(n_train, n_val=n_val, seed=args.seed, n_test=n_test)
    expected = split_indices(setting, len(dataset))
    if not all(np.array_equal(getattr(split, k).numpy(), expected[k]) for k in expected):
        raise RuntimeError("the MD17 data set drew another split than split_indices(): the peers would differ")
    train_set, val_set = dataset[split.train], dataset[split.val]
    seed_everything(args.seed)
    model = SchNet.from_paper(**model_overrides(args))
    standardize_model(model, train_set)
    splits = {"train": split.train, "val": split.val, "test": split.test}
    trainer = Trainer(model, train_set, val_set, Path(args.out), config, split=splits, units="kcal/mol")

    train_epoch = trainer._train_epoch  # the training part of the trainer's epoch, timed from outside
    train_times: List[float] = []

    def timed_train_epoch(*a: Any, **k: Any) -> Any:
        clock.mark("epoch_start")
        started = time.perf_counter()
        try:
            return train_epoch(*a, **k)
        finally:
            train_times.append(time.perf_counter() - started)

    trainer._train_epoch = timed_train_epoch  # type: ignore[method-assign]
    fit = trainer.fit()
    total_s = clock.mark("end")
    epoch_s = trainer.history[-1]["epoch_s"]  # the trainer's own: training epoch + validation
    return EpochRun(
        impl="ours",
        processing_s=processing_s,
        setup_s=clock.marks["epoch_start"] - processing_s,
        train_s=train_times[-1],
        val_s=epoch_s - train_times[-1],
        total_s=total_s,
        loading_s=loader_pass_s(trainer.train_loader, trainer.val_loader),
        steps=fit.steps,
        val_energy_mae=float(trainer.history[-1]["val_energy_mae"]),
        extra={"trainer_epoch_s": epoch_s, "batching": fit.batching},
    )


# ------------------------------------------------------------------------------------ SchNetPack
def schnetpack_unavailable() -> Optional[str]:
    """Why SchNetPack's training stack cannot run here (``None`` when it can)."""
    try:
        import_schnetpack()
        import pytorch_lightning  # noqa: F401
        import schnetpack.task  # noqa: F401
        import schnetpack.train  # noqa: F401
        import schnetpack.transform  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        import matscipy  # noqa: F401  (the neighbour list of SchNetPack's md17 experiment config)
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc} (SchNetPack's MatScipyNeighborList needs it)"
    return None


def _schnetpack_epoch_timer(clock: _Clock) -> Any:
    """A Lightning callback that marks the start of the training epoch and of the validation pass."""
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            clock.mark("epoch_start")

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            clock.mark("val_start")

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            clock.mark("val_end")

    return EpochTimer()


def run_schnetpack(setting: EpochSetting, work: Path) -> EpochRun:
    """SchNetPack's data module, task and Lightning trainer for one epoch (see the module docstring), run
    with ``work`` as the working folder: its data module takes a ``splitting.lock`` file in the current
    folder, which must not land in the caller's (e.g. the repository)."""
    import os

    work = work.resolve()  # paths stay right after the chdir
    work.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(work)
    try:
        return _run_schnetpack(setting, work)
    finally:
        os.chdir(previous)


def _run_schnetpack(setting: EpochSetting, work: Path) -> EpochRun:
    spk, _ = import_schnetpack()
    import pytorch_lightning as pl
    import schnetpack.task
    import schnetpack.train
    import schnetpack.transform as trn
    from ase import Atoms

    clock = _Clock()
    frames = load_frames(setting.npz)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "md17_ethanol.db"
    units = {"energy": "kcal/mol", "forces": "kcal/mol/Ang"}
    data = spk.data.ASEAtomsData.create(str(db), distance_unit="Ang", property_unit_dict=units)
    data.add_systems(
        [{"energy": np.array([e]), "forces": f} for e, f in zip(frames["E"], frames["F"])],
        [Atoms(numbers=frames["z"], positions=r) for r in frames["R"]],
    )
    processing_s = clock.mark("processed")

    split = split_indices(setting, len(frames["E"]))
    split_file = work / "split.npz"
    np.savez(split_file, train_idx=split["train"], val_idx=split["val"], test_idx=split["test"])
    cutoff = PAPER.peer_cutoff  # 30 A: every pair of the molecule, as in the paper
    with _frameworks_quiet():
        datamodule = spk.data.AtomsDataModule(
            str(db),
            batch_size=setting.batch_size,
            val_batch_size=setting.eval_batch_size,
            num_train=len(split["train"]),
            num_val=len(split["val"]),
            split_file=str(split_file),
            transforms=[
                trn.SubtractCenterOfMass(),
                trn.RemoveOffsets("energy", remove_mean=True),
                trn.MatScipyNeighborList(cutoff=cutoff),
                trn.CastTo32(),
            ],
            num_workers=0,
            property_units=units,
            distance_unit="Ang",
        )
        torch.manual_seed(setting.seed)
        radial = spk.nn.GaussianRBF(n_rbf=PAPER.num_gaussians, cutoff=PAPER.rbf_stop, start=PAPER.rbf_start)
        set_schnetpack_gaussians(radial, PAPER)
        representation = spk.representation.SchNet(
            n_atom_basis=PAPER.hidden_channels,
            n_interactions=PAPER.num_interactions,
            radial_basis=radial,
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
            n_filters=PAPER.num_filters,
        )
        model = spk.model.NeuralNetworkPotential(
            representation=representation,
            input_modules=[spk.atomistic.PairwiseDistances()],
            output_modules=[
                spk.atomistic.Atomwise(
                    n_in=PAPER.hidden_channels,
                    n_hidden=PAPER.output_hidden,
                    output_key="energy",
                    activation=spk.nn.shifted_softplus,
                ),
                spk.atomistic.Forces(energy_key="energy", force_key="forces"),
            ],
            postprocessors=[trn.CastTo64(), trn.AddOffsets("energy", add_mean=True)],
        )

        def output(name: str, weight: float) -> Any:
            import torchmetrics

            metrics = {"mae": torchmetrics.MeanAbsoluteError(), "rmse": torchmetrics.MeanSquaredError(squared=False)}
            return schnetpack.task.ModelOutput(name, loss_fn=torch.nn.MSELoss(), loss_weight=weight, metrics=metrics)

        # Eq. 5: mse(E) + rho mse(F) (SchNetPack's md17 config: 0.01 / 0.99, the same up to a factor)
        task = schnetpack.task.AtomisticTask(
            model=model,
            outputs=[output("energy", 1.0), output("forces", setting.rho)],
            optimizer_cls=torch.optim.Adam,
            optimizer_args={"lr": setting.lr},
        )
        trainer = pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            inference_mode=False,  # forces need gradients in validation (SchNetPack's trainer config)
            default_root_dir=str(work / "lightning"),
            callbacks=[schnetpack.train.ExponentialMovingAverage(decay=0.99), _schnetpack_epoch_timer(clock)],
        )
        trainer.fit(task, datamodule=datamodule)
    total_s = clock.mark("end")
    if not all(np.array_equal(np.asarray(getattr(datamodule, f"{k}_idx")), split[k]) for k in ("train", "val")):
        raise RuntimeError(f"SchNetPack's data module did not take the split of {split_file}")
    m = clock.marks
    mae = trainer.callback_metrics.get("val_energy_mae")
    return EpochRun(
        impl="schnetpack",
        processing_s=processing_s,
        setup_s=m["epoch_start"] - processing_s,
        train_s=m["val_start"] - m["epoch_start"],
        val_s=m["val_end"] - m["val_start"],
        total_s=total_s,
        loading_s=loader_pass_s(datamodule.train_dataloader(), datamodule.val_dataloader()),
        steps=int(trainer.global_step),
        val_energy_mae=float(mae) if mae is not None else math.nan,
        extra={"neighbor_list": "MatScipyNeighborList", "cutoff": cutoff},
    )


# ------------------------------------------------------------------------------------------- PyG
def run_pyg(setting: EpochSetting, work: Path) -> EpochRun:
    """``torch_geometric.nn.models.SchNet`` in the minimal PyG loop (see the module docstring)."""
    clock = _Clock()
    frames = load_frames(setting.npz)
    z = torch.from_numpy(frames["z"])
    examples = [
        Data(
            z=z,
            pos=torch.from_numpy(r).float(),
            energy=torch.tensor([e], dtype=torch.float32),
            forces=torch.from_numpy(f).float(),
        )
        for r, e, f in zip(frames["R"], frames["E"], frames["F"])
    ]
    processing_s = clock.mark("processed")

    split = split_indices(setting, len(examples))
    train_set = [examples[i] for i in split["train"]]
    val_set = [examples[i] for i in split["val"]]
    runner = PyGSchNet(PAPER, torch.device("cpu"))
    model = runner.model
    mean, std = energy_statistics(train_set)  # PyG's SchNet scales its atom-wise outputs by std, adds mean
    model.mean, model.std = mean, std
    optimizer = torch.optim.Adam(model.parameters(), lr=setting.lr)
    generator = torch.Generator().manual_seed(setting.seed)
    train_loader = DataLoader(train_set, batch_size=setting.batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(val_set, batch_size=setting.eval_batch_size, shuffle=False)

    clock.mark("epoch_start")
    model.train()
    steps = 0
    for batch in train_loader:
        pos = batch.pos.requires_grad_(True)
        energy = model(batch.z, pos, batch.batch).squeeze(-1)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        loss = (energy - batch.energy).square().mean() + setting.rho * (grad + batch.forces).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    clock.mark("val_start")
    model.eval()
    abs_error, count = 0.0, 0
    for batch in val_loader:
        pos = batch.pos.requires_grad_(True)
        energy = model(batch.z, pos, batch.batch).squeeze(-1)
        (grad,) = torch.autograd.grad(energy.sum(), pos)
        forces = -grad
        abs_error += float((energy.detach() - batch.energy).abs().sum())
        count += batch.num_graphs
        del forces
    m = clock.marks
    total_s = clock.mark("end")
    return EpochRun(
        impl="pyg",
        processing_s=processing_s,
        setup_s=m["epoch_start"] - processing_s,
        train_s=m["val_start"] - m["epoch_start"],
        val_s=total_s - m["val_start"],
        total_s=total_s,
        loading_s=loader_pass_s(train_loader, val_loader),
        steps=steps,
        val_energy_mae=abs_error / max(count, 1),
    )


RUNNERS: Dict[str, Callable[[EpochSetting, Path], EpochRun]] = {
    "ours": run_ours,
    "schnetpack": run_schnetpack,
    "pyg": run_pyg,
}


# ------------------------------------------------------------------------------------- the rounds
def measure(
    setting: EpochSetting,
    work: Path,
    impls: Sequence[str] = IMPLS,
    repeats: int = 3,
    say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """``repeats`` rounds, each running every available implementation once (interleaved: ours, SchNetPack,
    PyG, ours, ...), each run in a fresh folder under ``work``; returns every run, the medians and the
    implementations skipped with the reason."""
    skipped: Dict[str, str] = {}
    if "schnetpack" in impls:
        reason = schnetpack_unavailable()
        if reason:
            skipped["schnetpack"] = reason
            say(f"SchNetPack skipped: {reason}")
    active = [name for name in impls if name not in skipped]
    runs: Dict[str, List[EpochRun]] = {name: [] for name in active}
    for round_ in range(repeats):
        for name in active:
            run = RUNNERS[name](setting, work / f"{name}-{round_}")
            runs[name].append(run)
            say(
                f"round {round_ + 1}/{repeats} {name}: epoch {run.epoch_s:.2f} s (train {run.train_s:.2f}, "
                f"validation {run.val_s:.2f}), processing {run.processing_s:.2f} s, set-up {run.setup_s:.2f} s, "
                f"total {run.total_s:.2f} s, loaders alone {run.loading_s:.2f} s, {run.steps} steps, "
                f"val energy MAE {run.val_energy_mae:.3g} kcal/mol"
            )
    medians = {
        name: {part: statistics.median(getattr(r, part) for r in rs) for part in PARTS} for name, rs in runs.items()
    }
    return {
        "runs": {name: [r.as_dict() for r in rs] for name, rs in runs.items()},
        "medians": medians,
        "skipped": skipped,
    }


def ratios(medians: Dict[str, Dict[str, float]], reference: str = "ours") -> Dict[str, Dict[str, float]]:
    """``peer part / ours part`` for every peer and part (> 1: ours is faster)."""
    if reference not in medians:
        return {}
    ref = medians[reference]
    return {
        name: {part: value / ref[part] if ref[part] > 0 else math.nan for part, value in parts.items()}
        for name, parts in medians.items()
        if name != reference
    }


def table(result: Dict[str, Any]) -> str:
    """The markdown table of the medians, with ``peer / ours`` ratios of the epoch and the total."""
    medians = result["medians"]
    rel = ratios(medians)
    lines = [
        "| implementation | data set processing (once) | set-up | training epoch | validation | epoch | total | "
        "of the epoch: data loading | epoch peer / ours | total peer / ours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in IMPLS:
        if name in medians:
            m = medians[name]
            r = rel.get(name, {})
            cells = [f"{m[p]:.2f} s" for p in PARTS]
            ratio = [f"{r[p]:.2f}" if p in r else "1 (reference)" for p in ("epoch_s", "total_s")]
            lines.append(f"| {LABELS[name]} | " + " | ".join(cells + ratio) + " |")
        elif name in result["skipped"]:
            lines.append(f"| {LABELS[name]} | skipped: {result['skipped'][name]} |" + " |" * 8)
    return "\n".join(lines)
