"""Files written by pyg-schnet 0.2.0 (``tests/fixtures``, see ``write_v0_2_files.py``) keep loading:
the model predicts what it predicted then, and a resume reads the checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from pyg_schnet import load_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_model_of_version_0_2_predicts_as_then():
    model = load_model(FIXTURES / "model_v0.2.0.pt").double()
    assert model.units == {"energy": "eV", "length": "Angstrom"}
    for entry in json.loads((FIXTURES / "v0_2_predictions.json").read_text()).values():
        energy, forces = model.energy_and_forces(
            torch.tensor(entry["z"]), torch.tensor(entry["pos"], dtype=torch.float64)
        )
        torch.testing.assert_close(energy, torch.tensor(entry["energy"], dtype=torch.float64), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(forces, torch.tensor(entry["forces"], dtype=torch.float64), rtol=1e-5, atol=1e-5)


def test_checkpoint_of_version_0_2_resumes(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
    from _trainer_tiny_data import synthetic_molecules

    from pyg_schnet.train import TrainConfig, Trainer

    data = synthetic_molecules(6, seed=1)
    model = load_model(FIXTURES / "model_v0.2.0.pt").train()
    (tmp_path / "checkpoint.pt").write_bytes((FIXTURES / "checkpoint_v0.2.0.pt").read_bytes())
    split = {"train": torch.arange(4), "val": torch.arange(4, 6), "test": torch.empty(0, dtype=torch.long)}
    trainer = Trainer(
        model, data[:4], data[4:], tmp_path, TrainConfig(batch_size=2, max_epochs=2, progress=False), split=split
    )
    result = trainer.fit(resume=True)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4, (state["epoch"], state["step"])
    assert result is not None
