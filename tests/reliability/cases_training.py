"""Audit cases: training runs with non-finite losses, changed settings on resume, invalid settings
(issue 8, defects 2, 4, 12 and 13)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any, List

import torch

from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.protocols import md17
from pyg_schnet.train import NonFiniteError, TrainConfig, Trainer, standardize_model

from .registry import case

_spec = importlib.util.spec_from_file_location(
    "_trainer_tiny_data", Path(__file__).resolve().parents[1] / "train" / "_trainer_tiny_data.py"
)
tiny_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_data)  # the trainer tests' tiny model and data, shared


def molecules(count: int = 16) -> List[Any]:
    return tiny_data.synthetic_molecules(count, seed=5)


def with_nan_energy(examples: List[Any], k: int) -> List[Any]:
    examples = [copy.copy(d) for d in examples]
    examples[k].energy = torch.full_like(examples[k].energy, float("nan"))
    return examples


def trainer(out: Path, train=None, val=None, **settings: Any) -> Trainer:
    data = molecules()
    model = tiny_data.tiny_model()
    model.set_standardization(-3.0, 1.0)
    config = TrainConfig(
        **{**dict(rho=1.0, batch_size=4, max_epochs=1, patience=None, seed=1, progress=False), **settings}
    )
    return Trainer(model, train if train is not None else data[:12], val if val is not None else data[12:], out, config)


@case(
    "training",
    "a training molecule with energy NaN (the run exited 0 before)",
    NonFiniteError,
    r"epoch 1, step \d+: the training loss is nan .*training data: example 7, field 'energy'",
)
def _(tmp: Path):
    trainer(tmp, train=with_nan_energy(molecules()[:12], 7)).fit()


@case(
    "training",
    "a validation molecule with energy NaN",
    NonFiniteError,
    r"epoch 1, step 3: the validation loss is nan .*validation data: example 2",
)
def _(tmp: Path):
    try:
        trainer(tmp, val=with_nan_energy(molecules()[12:], 2)).fit()
    finally:
        assert not (tmp / "model.pt").exists() and not (tmp / "checkpoint.pt").exists()


@case(
    "training",
    "--resume with --lr 0.01 (ignored, yet reported, before)",
    ValueError,
    r"a resume must keep the settings .*lr 0\.001 -> 0\.01",
)
def _(tmp: Path):
    trainer(tmp).fit()
    trainer(tmp, lr=0.01, max_epochs=2).fit(resume=True)


@case("training", "--resume with --rho 0 (applied mid-run before)", ValueError, r"rho 1\.0 -> 0\.0")
def _(tmp: Path):
    trainer(tmp).fit()
    trainer(tmp, rho=0.0, max_epochs=2).fit(resume=True)


@case("training", "--resume with another --batch-size (applied silently before)", ValueError, r"batch_size 4 -> 6")
def _(tmp: Path):
    trainer(tmp).fit()
    trainer(tmp, batch_size=6, max_epochs=2).fit(resume=True)


@case("training", "--resume with a larger --max-epochs", None, r"continued from epoch 1 to epoch 2")
def _(tmp: Path) -> str:
    trainer(tmp).fit()
    fit = trainer(tmp, max_epochs=2, patience=3).fit(resume=True)
    return f"accepted (a cap): continued from epoch {fit.resumed_from_epoch} to epoch {fit.epochs}"


@case(
    "training", "TrainConfig(rho=nan)", ValueError, r"TrainConfig: rho must be a finite number in \[0, inf\), got nan"
)
def _(tmp: Path):
    TrainConfig(rho=float("nan"))


@case("training", "TrainConfig(lr=0)", ValueError, r"TrainConfig: lr must be a finite number in \(0, inf\), got 0")
def _(tmp: Path):
    TrainConfig(lr=0.0)


@case("training", "TrainConfig(lr_decay=0)", ValueError, r"lr_decay must be a finite number in \(0, 1\]")
def _(tmp: Path):
    TrainConfig(lr_decay=0.0)


def _benchmark_writes_nothing(tmp: Path, *flags: str) -> None:
    try:
        md17.main(
            [
                "--raw-file",
                str(DEMO_DATA),
                "--root",
                str(tmp / "data"),
                "--out",
                str(tmp / "out"),
                "--max-epochs",
                "1",
                "--no-progress",
                *flags,
            ]
        )
    finally:
        assert not any(tmp.iterdir()), "files were written before the settings were checked"


@case(
    "training",
    "benchmarks/md17.py --lr -0.001 (left split.npz behind before)",
    ValueError,
    r"TrainConfig: lr must be a finite number in \(0, inf\), got -0\.001",
)
def _(tmp: Path):
    _benchmark_writes_nothing(tmp, "--lr", "-0.001")


@case("training", "benchmarks/md17.py --lr nan", ValueError, r"lr must be a finite number .*got nan")
def _(tmp: Path):
    _benchmark_writes_nothing(tmp, "--lr", "nan")


@case("training", "benchmarks/md17.py --rho nan", ValueError, r"rho must be a finite number .*got nan")
def _(tmp: Path):
    _benchmark_writes_nothing(tmp, "--rho", "nan")


@case(
    "training",
    "benchmarks/md17.py --hidden-channels 0",
    ValueError,
    r"SchNet: hidden_channels must be a positive integer",
)
def _(tmp: Path):
    _benchmark_writes_nothing(tmp, "--hidden-channels", "0")


@case(
    "training",
    "training energies with a NaN (NaN standardisation mean)",
    ValueError,
    r"training example 3 has energy nan: cannot standardise",
)
def _(tmp: Path):
    standardize_model(tiny_data.tiny_model(), with_nan_energy(molecules(8), 3))
