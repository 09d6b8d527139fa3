"""What the benchmark scripts share: command-line flags, one training run, and its results files.

Every benchmark (``benchmarks/md17.py``, ``qm9.py``, ``iso17.py`` and ``pyg-schnet demo``)
builds its data sets and split, then calls :func:`run_experiment`, which

1. builds the paper's SchNet (:meth:`pyg_schnet.SchNet.from_paper`, optional size overrides),
2. standardises energies on the training split (:mod:`pyg_schnet.train.standardize`),
3. trains with :class:`pyg_schnet.train.Trainer` (``--resume`` continues ``DIR/checkpoint.pt``),
4. tests the EMA weights of the best validation epoch on every test set,
5. writes ``DIR/results.json``, ``DIR/split.npz``, ``DIR/model.pt``, ``DIR/log.csv``,
   ``DIR/learning_curves.png`` and ``DIR/parity_<test set>.png``,
6. prints the test errors beside the paper's numbers for the same row.

All settings are validated (:func:`check_arguments`) before anything is written, into the output
folder or the data folder; ``results.json`` lists only files that exist. From before the first file
to the last, the output folder is locked (:func:`out_folder_lock`): a second run into it, even one
with ``--overwrite``, is refused naming the run that writes there, and the lock of a killed run is
taken over.

Under ``torchrun`` (see docs/distributed.md) every rank runs all of this: the protocols start the
process group (:func:`setup_distributed`) and let rank 0 prepare the data first, training and testing
run data-parallel (:mod:`pyg_schnet.train.distributed`), and rank 0 alone prints and writes files;
``results.json`` records ``"distributed": {"world_size", "backend"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import numbers
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from pyg_schnet.io.devices import describe_device, resolve_device
from pyg_schnet.io.files import write_json
from pyg_schnet.io.run_lock import RunLock
from pyg_schnet.train import distributed
from pyg_schnet.train.predict import BATCHING_CHOICES
from pyg_schnet.train.schedules import LR_SCHEDULES, PLATEAU_DEFAULTS
from pyg_schnet.train.standardize import standardize_model
from pyg_schnet.train.tensorboard_log import require_tensorboard
from pyg_schnet.train.trainer import TrainConfig, Trainer
from pyg_schnet.validation import MAX_SEED, check_finite, check_model_config, check_positive_int


# --------------------------------------------------------------------------------------- flags
def add_common_arguments(
    parser: argparse.ArgumentParser, *, out: str, patience: int, n_val: Optional[int] = 1000
) -> argparse.ArgumentParser:
    """The flags every benchmark takes (per-table flags are added by the caller)."""
    g = parser.add_argument_group("run")
    g.add_argument(
        "--root",
        type=Path,
        required=False,
        default=None,
        help="data set folder: raw files in ROOT/raw, processed ones in ROOT/processed",
    )
    g.add_argument("--out", type=Path, default=Path(out), help="output folder")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the shuffling")
    g.add_argument("--max-epochs", type=int, default=None, help="stop after this many epochs in total (None: no cap)")
    g.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop when the training wall time (summed over resumes) would pass this",
    )
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in OUT (without it, or --resume, an OUT holding a run is refused)",
    )
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's choice)")
    g.add_argument("--device", default=None, help="torch device (None: cuda if available, else cpu)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch lines stay)")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    g.add_argument(
        "--dist-backend",
        default="auto",
        choices=("auto",) + distributed.BACKENDS,
        help=f"under torchrun: process-group backend (auto: nccl on CUDA, gloo on CPU; or ${distributed.ENV_BACKEND})",
    )
    g.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        help="under torchrun: seconds a collective waits for the other ranks before it fails "
        f"(default ${distributed.ENV_TIMEOUT} or {distributed.DEFAULT_TIMEOUT_S:g})",
    )

    t = parser.add_argument_group("training (defaults: the paper's, section 5)")
    t.add_argument(
        "--n-val",
        type=int,
        default=n_val,
        help="validation molecules (None: the benchmark's rule, see its description)",
    )
    t.add_argument("--n-test", type=int, default=None, help="test molecules (None: all the rest)")
    t.add_argument("--batch-size", type=int, default=32, help="molecules per training mini-batch")
    t.add_argument("--eval-batch-size", type=int, default=100, help="molecules per validation/test batch")
    t.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    t.add_argument(
        "--energy-weight",
        type=float,
        default=1.0,
        help="weight of the energy term of Eq. 5 (paper: 1); 0 with --rho > 0 trains on forces only",
    )
    t.add_argument("--lr-decay", type=float, default=0.96, help="learning-rate factor per --lr-decay-steps")
    t.add_argument(
        "--lr-decay-steps", type=int, default=100_000, help="optimizer steps per --lr-decay (smooth exponential decay)"
    )
    t.add_argument(
        "--lr-schedule",
        default="paper",
        choices=LR_SCHEDULES,
        help="paper: the smooth decay of --lr-decay per --lr-decay-steps (per step); plateau: SchNetPack's "
        "default, --lr times --plateau-factor after --plateau-patience epochs without a lower validation loss",
    )
    t.add_argument(
        "--plateau-factor",
        type=float,
        default=PLATEAU_DEFAULTS["factor"],
        help="plateau schedule: learning-rate factor per reduction, in (0, 1) (SchNetPack's default)",
    )
    t.add_argument(
        "--plateau-patience",
        type=int,
        default=int(PLATEAU_DEFAULTS["patience"]),
        help="plateau schedule: epochs without a lower validation loss before a reduction (SchNetPack's default)",
    )
    t.add_argument(
        "--plateau-cooldown",
        type=int,
        default=int(PLATEAU_DEFAULTS["cooldown"]),
        help="plateau schedule: epochs after a reduction before epochs without improvement count again "
        "(SchNetPack's default)",
    )
    t.add_argument(
        "--min-lr",
        type=float,
        default=PLATEAU_DEFAULTS["min_lr"],
        help="plateau schedule: the lowest learning rate (SchNetPack's default)",
    )
    t.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write a TensorBoard log to OUT/tensorboard (needs: pip install tensorboard); "
        "view with tensorboard --logdir OUT",
    )
    t.add_argument(
        "--ema-decay", type=float, default=0.99, help="decay per step of the exponential moving average of the weights"
    )
    t.add_argument(
        "--patience", type=int, default=patience, help="early stopping: epochs without a lower validation loss (0: off)"
    )
    t.add_argument(
        "--batching",
        default="sparse",
        choices=BATCHING_CHOICES,
        help="how molecules are batched: sparse (PyG), dense (padded), or auto (the faster, measured at start-up)",
    )

    m = parser.add_argument_group("model (defaults: the paper's preset, SchNet.from_paper())")
    m.add_argument("--hidden-channels", type=int, default=None, help="atom features F (paper 64)")
    m.add_argument("--num-filters", type=int, default=None, help="cfconv filters (paper 64)")
    m.add_argument("--num-interactions", type=int, default=None, help="interaction blocks (paper 3)")
    m.add_argument("--num-gaussians", type=int, default=None, help="radial basis functions (paper 301)")
    m.add_argument("--cutoff", type=float, default=None, help="radius graph in Angstrom (paper: none, all pairs)")
    return parser


def model_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``SchNet.from_paper`` overrides given on the command line."""
    names = ("hidden_channels", "num_filters", "num_interactions", "num_gaussians", "cutoff")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def train_config(args: argparse.Namespace, rho: float) -> TrainConfig:
    """A :class:`TrainConfig` from the common flags."""
    return TrainConfig(
        rho=rho,
        energy_weight=getattr(args, "energy_weight", 1.0),
        lr=args.lr,
        lr_decay=args.lr_decay,
        lr_decay_steps=args.lr_decay_steps,
        lr_schedule=getattr(args, "lr_schedule", "paper"),
        plateau_factor=getattr(args, "plateau_factor", PLATEAU_DEFAULTS["factor"]),
        plateau_patience=getattr(args, "plateau_patience", int(PLATEAU_DEFAULTS["patience"])),
        plateau_cooldown=getattr(args, "plateau_cooldown", int(PLATEAU_DEFAULTS["cooldown"])),
        min_lr=getattr(args, "min_lr", PLATEAU_DEFAULTS["min_lr"]),
        tensorboard=getattr(args, "tensorboard", False),
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        ema_decay=args.ema_decay,
        patience=args.patience if args.patience and args.patience > 0 else None,
        max_epochs=args.max_epochs,
        max_minutes=args.max_minutes,
        seed=args.seed,
        batching=args.batching,
        device=resolve_device(args.device, "--device"),
        progress=not (args.no_progress or getattr(args, "quiet", False)),
        epoch_lines=not getattr(args, "quiet", False),
        stress_weight=getattr(args, "stress_weight", None) or 0.0,
    )


def setup_distributed(args: argparse.Namespace) -> distributed.DistInfo:
    """Starts the process group when launched by ``torchrun`` (idempotent; one process otherwise),
    with ``--dist-backend`` and ``--dist-timeout``."""
    return distributed.init_from_env(
        resolve_device(getattr(args, "device", None)),
        backend=getattr(args, "dist_backend", None),
        timeout_s=getattr(args, "dist_timeout", None),
    )


def check_lr_schedule_flags(args: argparse.Namespace) -> None:
    """``--plateau-factor`` in (0, 1), ``--plateau-patience`` and ``--plateau-cooldown`` >= 0,
    ``--min-lr`` >= 0 (finite), and
    ``--tensorboard`` only where the ``tensorboard`` package imports.

    Raises:
        ValueError: naming the flag; ImportError: ``--tensorboard`` without TensorBoard (how to install it).
    """
    owner = "command line"
    if getattr(args, "plateau_factor", None) is not None:
        check_finite(owner, "--plateau-factor", args.plateau_factor, low=0.0, high=1.0, low_open=True, high_open=True)
    if getattr(args, "plateau_patience", None) is not None:
        check_positive_int(owner, "--plateau-patience", args.plateau_patience, minimum=0)
    if getattr(args, "plateau_cooldown", None) is not None:
        check_positive_int(owner, "--plateau-cooldown", args.plateau_cooldown, minimum=0)
    if getattr(args, "min_lr", None) is not None:
        check_finite(owner, "--min-lr", args.min_lr, low=0.0)
    if getattr(args, "tensorboard", False):
        require_tensorboard("--tensorboard")


def check_arguments(args: argparse.Namespace, rho: float) -> TrainConfig:
    """Validate the common flags (training settings, device, threads, model sizes) and return the
    :class:`TrainConfig`; the benchmarks call this first, before any file or link is created.

    Raises:
        ValueError: naming the setting at fault.
    """
    if getattr(args, "threads", None) is not None:
        check_positive_int("command line", "--threads", args.threads)
    if getattr(args, "patience", None) is not None:
        check_positive_int("command line", "--patience (0: off)", args.patience, minimum=0)
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    check_lr_schedule_flags(args)
    check_out_folder(args)
    config = train_config(args, rho)
    from pyg_schnet.models.config import PAPER_CONFIG

    check_model_config({**PAPER_CONFIG, **model_overrides(args)})
    return config


def check_seed(value: Any, flag: str = "--seed") -> None:
    """Raise :class:`ValueError` naming ``flag`` unless ``value`` is an integer in ``0 .. MAX_SEED``
    (beyond that torch's generator overflows, below 0 numpy's refuses, both without naming the flag)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"command line: {flag} must be an integer from 0 to 2**64 - 1 = {MAX_SEED} (the seeds numpy's and "
            f"torch's generators accept), got {value!r}"
        )


#: Files a training run writes into its output folder (besides ``parity_<test set>.png``); one of them
#: there means the folder holds a run.
RUN_FILES = ("checkpoint.pt", "model.pt", "results.json", "log.csv", "split.npz", "learning_curves.png")


def existing_run_files(out: Path) -> List[Path]:
    """The files of a training run already in ``out`` (:data:`RUN_FILES` and parity plots)."""
    if not out.is_dir():
        return []
    return sorted([out / name for name in RUN_FILES if (out / name).exists()] + list(out.glob("parity_*.png")))


def check_out_folder(args: argparse.Namespace) -> None:
    """Refuse an ``--out`` that already holds a run unless ``--resume`` (continue it) or ``--overwrite``
    (replace it) says what to do with it; refuse both at once.

    Raises:
        ValueError: ``--resume`` with ``--overwrite``.
        FileExistsError: naming the folder and the run's files found there.
    """
    resume, overwrite = bool(getattr(args, "resume", False)), bool(getattr(args, "overwrite", False))
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    found = existing_run_files(Path(args.out))
    if found and not resume and not overwrite:
        names = ", ".join(path.name for path in found)
        raise FileExistsError(
            f"{args.out} already holds a training run ({names}): pass --resume to continue it, --overwrite to "
            "replace it, or choose another --out"
        )


@contextlib.contextmanager
def out_folder_lock(args: argparse.Namespace, info: distributed.DistInfo) -> Iterator[None]:
    """Hold the lock of ``--out`` (:class:`pyg_schnet.io.run_lock.RunLock`) for the block: one run
    writes there at a time. Rank 0 alone, the writer, takes it (and then checks the folder again:
    a run may have finished there since :func:`check_out_folder`); every rank raises rank 0's error,
    so none waits for a rank that stopped.

    Raises:
        RunFolderLocked: another live run writes into ``--out`` (naming it and the holder).
        FileExistsError: a run appeared in ``--out`` meanwhile (see :func:`check_out_folder`).
    """
    lock = RunLock(Path(args.out)) if info.is_main else None
    error: Optional[BaseException] = None
    if lock is not None:
        try:
            lock.acquire()
            check_out_folder(args)
        except (RuntimeError, OSError, ValueError) as exc:
            lock.release(failed=True)
            error = exc
    error = distributed.broadcast_object(error, info)
    if error is not None:
        raise error
    failed = True
    try:
        yield
        failed = False
    finally:
        if lock is not None:
            lock.release(failed=failed)  # a failed run leaves no empty folder it created


def clear_run(out: Path) -> List[Path]:
    """Remove the files of the run in ``out`` (``--overwrite``), before the new run writes any; returns them."""
    found = existing_run_files(out)
    for path in found:
        path.unlink()
    return found


# ------------------------------------------------------------------------------------- results
def _fmt(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def comparison_line(
    label: str, test: Mapping[str, float], paper: Mapping[str, Optional[float]], unit: str = "kcal/mol"
) -> str:
    """One line: our test MAEs (in ``unit``) beside the paper's (and GDML's / the mean predictor's) for the same row."""
    parts = [f"{label}: energy MAE {_fmt(test.get('energy_mae'))} {unit} (paper {_fmt(paper.get('energy_mae'))}"]
    if paper.get("gdml_energy_mae") is not None:
        parts[-1] += f", GDML {_fmt(paper['gdml_energy_mae'])}"
    if paper.get("mean_predictor_energy_mae") is not None:
        parts[-1] += f", mean predictor {_fmt(paper['mean_predictor_energy_mae'])}"
    parts[-1] += ")"
    force = test.get("force_mae")
    if force is not None and math.isfinite(force):
        line = f"force MAE {_fmt(force)} {unit}/Å (paper {_fmt(paper.get('force_mae'))}"
        if paper.get("gdml_force_mae") is not None:
            line += f", GDML {_fmt(paper['gdml_force_mae'])}"
        if paper.get("mean_predictor_force_mae") is not None:
            line += f", mean predictor {_fmt(paper['mean_predictor_force_mae'])}"
        parts.append(line + ")")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------ one run
def run_experiment(
    args: argparse.Namespace,
    *,
    benchmark: str,
    label: str,
    rho: float,
    train_set,
    val_set,
    test_sets: Mapping[str, Any],
    split,
    paper: Mapping[str, Mapping[str, Optional[float]]],
    data_source: Mapping[str, Any],
    atomref: Optional[Tensor] = None,
    extra: Optional[Mapping[str, Any]] = None,
    command: Optional[Sequence[str]] = None,
    units: str = "kcal/mol",
    model_options: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Trains, tests and writes the results of one benchmark row (see the module docstring).

    Args:
        args: parsed flags (:func:`add_common_arguments` plus the table's own).
        benchmark: ``'md17'``, ``'qm9'``, ``'iso17'`` or ``'demo'``.
        label: human-readable row, e.g. ``'MD17 ethanol, N = 1,000, energy + forces'``.
        rho: force weight of Eq. 5.
        train_set, val_set: data sets whose examples carry ``energy`` (in ``units``) and ``force``.
        test_sets: name -> data set; with one entry, ``results['test']`` holds its errors directly,
            with several, ``results['test'][name]``.
        split: a :class:`pyg_schnet.datasets.SplitIndices` (saved as ``split.npz``).
        paper: name of each test set -> the paper's numbers for it (:mod:`.paper_values`).
        data_source: recorded under ``results['data']`` (root, files with sha256, sizes).
        atomref: per-element reference energies ``[max_z]`` in kcal/mol (QM9) or ``None``.
        extra: more fields for ``results.json``.
        command: the command line to record (default ``sys.argv``).
        units: the unit of the training targets ``data.energy`` (kcal/mol in the paper's protocols; a QM9
            target's own, e.g. ``"eV"`` for HOMO or ``"e*Angstrom"`` for the dipole moment), recorded as the
            model's unit and in ``results.json``; ``atomref`` is in it too.
        model_options: more :class:`~pyg_schnet.models.config.SchNetConfig` fields for the model, e.g.
            ``{"output": "intensive"}`` (after the command line's size overrides).

    Returns:
        the dict written to ``results.json``.
    """
    from pyg_schnet.models.schnet import SchNet
    from pyg_schnet.train.plots import plot_learning_curves, plot_parity
    from pyg_schnet.train.state import seed_everything

    started = time.monotonic()
    config = check_arguments(args, rho)  # everything is validated before the first file is written
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = setup_distributed(args)
    say = print if info.is_main else (lambda *_, **__: None)  # rank 0 alone prints and writes
    config.device = distributed.local_device(config.device, info)
    out = Path(args.out)
    with out_folder_lock(args, info):  # before the first file is written into --out, held to the end
        if getattr(args, "overwrite", False) and info.is_main:
            removed = clear_run(out)
            if removed:
                say(f"--overwrite: removed the earlier run's {', '.join(path.name for path in removed)} from {out}")
        seed_everything(args.seed)
        model = SchNet.from_paper(**{**model_overrides(args), **dict(model_options or {})})
        mean, std = standardize_model(model, train_set, atomref)
        split_dict = {"train": split.train, "val": split.val, "test": split.test}
        # the protocols train in kcal/mol; a data set that says otherwise is refused by the trainer
        trainer = Trainer(model, train_set, val_set, out, config, split=split_dict, units=units)
        out.mkdir(parents=True, exist_ok=True)
        if info.is_main:
            split.save(out / "split.npz")
        n_train, n_val, n_test_total = len(train_set), len(val_set), sum(len(s) for s in test_sets.values())
        say(
            f"{label}: {n_train} train, {n_val} validation, "
            + ", ".join(f"{len(s)} test ({name})" for name, s in test_sets.items())
            + f"; seed {args.seed}; device {describe_device(config.device)}"
            + (f"; {info.world_size} processes ({info.backend})" if info.enabled else "")
        )

        fit = trainer.fit(resume=args.resume)
        say(
            f"training stopped ({fit.stopped}) after {fit.epochs} epochs, {fit.steps} steps, "
            f"{fit.elapsed_s / 60:.1f} min; best validation epoch {fit.best_epoch}"
        )

        best = trainer.best_model()
        tests: Dict[str, Dict[str, float]] = {}
        files: Dict[str, str] = {
            "model": "model.pt",
            "checkpoint": "checkpoint.pt",
            "log": "log.csv",
            "split": "split.npz",
        }
        if config.tensorboard:
            files["tensorboard"] = trainer.tensorboard_dir.name
        plots_ok = True
        if info.is_main:
            try:
                plot_learning_curves(trainer.history, out / "learning_curves.png", title=label)
                files["learning_curves"] = "learning_curves.png"
            except ImportError as exc:  # matplotlib is the optional 'plot' extra
                plots_ok = False
                print(f"no plots: {exc}")
        plots_ok = distributed.broadcast_object(plots_ok, info)  # every rank keeps predictions, or none
        for name, dataset in test_sets.items():
            acc = trainer.evaluate(dataset, model=best, keep_predictions=plots_ok)  # sharded, all-reduced
            tests[name] = acc.compute()
            if plots_ok and info.is_main:
                png = f"parity_{name}.png"
                plot_parity(acc.concatenated(), out / png, title=f"{label} — {name}", metrics=tests[name])
                files[f"parity_{name}"] = png

        single = len(test_sets) == 1
        results: Dict[str, Any] = {
            "benchmark": benchmark,
            "row": label,
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join(command if command is not None else [Path(sys.executable).name, *sys.argv]),
            "config": {"train": asdict(config), "model": dict(best.config), "args": vars(args)},
            "data": dict(data_source),
            "split": {
                "seed": args.seed,
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test_total,
                "test_sets": {name: len(s) for name, s in test_sets.items()},
                "file": "split.npz",
            },
            "standardization": {
                "mean_per_atom": mean,
                "std_per_atom": std,
                "atomref": atomref is not None,
                "unit": units,
                # per atom for an extensive output, per structure for an intensive one, a charge scale (e)
                # for a dipole moment (pyg_schnet.train.standardize)
                "output": best.settings.output,
            },
            # every output of the model by name and kind, and the loss weights of the extra heads
            "heads": {"kinds": dict(best.head_kinds), "weights": dict(trainer.head_weights)},
            "training": {
                "epochs": fit.epochs,
                "steps": fit.steps,
                "stopped": fit.stopped,
                "best_epoch": fit.best_epoch,
                "best_val": fit.best_val,
                "train_time_s": fit.elapsed_s,
                "batching": fit.batching,
                "resumed_from_epoch": fit.resumed_from_epoch,
            },
            "test": next(iter(tests.values())) if single else tests,
            "units": {
                "energy": units,
                "force": f"{units}/Angstrom",
                # dipole outputs are e*Angstrom whatever the energy unit (pyg_schnet.nn.dipole)
                **({"dipole": "e*Angstrom"} if any(k.startswith("dipole") for k in best.head_kinds.values()) else {}),
                **({"stress": f"{units}/Angstrom/Angstrom/Angstrom"} if config.stress_weight > 0 else {}),
            },
            "paper": next(iter(paper.values()), {}) if single else dict(paper),
            "wall_time_s": time.monotonic() - started,
            "device": describe_device(config.device),
            "distributed": info.as_record(),
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            # files that exist, and the TensorBoard folder (--tensorboard) once it holds an event file
            "files": {
                key: name
                for key, name in files.items()
                if (out / name).is_file() or any((out / name).glob("events.out.tfevents.*"))
            },
        }
        try:
            import torch_geometric

            results["torch_geometric_version"] = torch_geometric.__version__
        except ImportError:  # pragma: no cover
            pass
        if extra:
            results.update(extra)
        if not info.is_main:
            return results
        write_json(results, out / "results.json")

        for name, metrics in tests.items():
            print(comparison_line(label if single else f"{label} [{name}]", metrics, paper.get(name, {}), units))
        written = results["files"]
        print(
            f"results: {out / 'results.json'}; "
            + "; ".join(f"{key}: {out / written[key]}" for key in ("model", "log") if key in written)
        )
        if plots_ok:
            print("plots: " + ", ".join(str(out / f) for f in written.values() if f.endswith(".png")))
        return results
