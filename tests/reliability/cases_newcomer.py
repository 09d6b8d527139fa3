"""Audit cases: what a newcomer hit (issue 19): units nobody stated, a model file that records none, an
output folder that already holds a run (a missing device: tests/test_devices.py, as it depends on the machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pyg_schnet import SchNet, save_model
from pyg_schnet.train import TrainConfig, Trainer

from .cases_training import tiny_data
from .registry import case

TINY = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, rbf_stop=3.0, cutoff=3.0)


@case(
    "training",
    "Trainer on a list of Data whose energy unit nobody states (saved as kcal/mol before)",
    ValueError,
    r"units of the training energies are unknown \(the data set declares none\)",
)
def _(tmp: Path) -> None:
    data = tiny_data.synthetic_molecules(6)
    Trainer(SchNet(**TINY), data[:4], data[4:], tmp, TrainConfig(max_epochs=1, progress=False))


@case("files", "save_model of a model without units", ValueError, r"the model's units are unknown: set model\.units")
def _(tmp: Path) -> None:
    save_model(SchNet(**TINY), tmp / "model.pt")


@case(
    "simulation",
    "calculator on a model.pt of format /1 (no units) without energy_unit (read as kcal/mol before)",
    ValueError,
    r"the model's units are unknown .*pass SchNetCalculator\(\.\.\., energy_unit=\.\.\.\)",
)
def _(tmp: Path) -> None:
    from pyg_schnet.simulation.ase import SchNetCalculator

    model = SchNet(**TINY)
    torch.save(
        {"format": "pyg_schnet.model/1", "config": dict(model.config), "state_dict": model.state_dict()}, tmp / "old.pt"
    )
    SchNetCalculator(tmp / "old.pt")


@case(
    "training",
    "train into an --out that holds a finished run, without --resume (overwritten before)",
    FileExistsError,
    r"already holds a training run \(.*model\.pt.*\): pass --resume to continue it, --overwrite to replace it",
)
def _(tmp: Path) -> None:
    from ase.build import molecule

    from pyg_schnet.cli import main

    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    R = atoms.positions[None] + rng.normal(scale=0.05, size=(30, len(atoms), 3))
    np.savez(tmp / "eth.npz", R=R, z=atoms.numbers, E=rng.normal(-97000.0, 1.0, (30, 1)), F=rng.normal(size=R.shape))
    flags = [
        "train",
        "md17",
        "--raw-file",
        str(tmp / "eth.npz"),
        "--root",
        str(tmp / "data"),
        "--out",
        str(tmp / "run"),
        "--n-train",
        "20",
        "--n-val",
        "5",
        "--max-epochs",
        "1",
        "--quiet",
        *tiny_data.TINY_FLAGS,
    ]
    main(flags)
    main(flags)
