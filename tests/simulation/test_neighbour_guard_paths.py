"""A model's ``max_num_neighbors`` guard holds on every MD path: the MD evaluator (which counts no
neighbours) is used only where no atom can exceed the guard, so the calculator and OpenMM raise the
model's error instead of returning an energy the model itself refuses to compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from pyg_schnet import SchNet
from pyg_schnet.models.md_evaluator import MDEvaluator, neighbour_guard_reason
from pyg_schnet.simulation.ase import SchNetCalculator


def guarded_model(guard: int) -> SchNet:
    torch.manual_seed(0)
    model = (
        SchNet(
            hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, cutoff=5.0, max_num_neighbors=guard
        )
        .double()
        .eval()
    )
    model.units = {"energy": "eV", "length": "Angstrom"}
    return model


def cluster(n: int) -> Atoms:
    """``n`` carbon atoms on a 1.2 Angstrom grid: every atom within 5 Angstrom of every other."""
    grid = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], dtype=float)[:n] * 1.2
    return Atoms(numbers=[6] * n, positions=grid)


def test_the_reason_names_the_guard_only_where_an_atom_could_exceed_it() -> None:
    model = guarded_model(4)
    assert neighbour_guard_reason(model, 5) is None
    assert "max_num_neighbors guard (4)" in (neighbour_guard_reason(model, 6) or "")
    assert neighbour_guard_reason(guarded_model(None), 1000) is None
    with pytest.raises(ValueError, match="max_num_neighbors guard \\(4\\)"):
        MDEvaluator(model, torch.full((6,), 6))


def test_calculator_raises_the_models_error_instead_of_an_energy() -> None:
    model = guarded_model(4)
    atoms = cluster(8)
    z, pos = torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions)
    with pytest.raises(ValueError) as from_model:
        model(z, pos)
    atoms.calc = SchNetCalculator(model, dtype=torch.float64)
    with pytest.raises(ValueError) as from_calculator:
        atoms.get_potential_energy()
    assert str(from_calculator.value) == str(from_model.value)


def test_small_molecules_keep_the_evaluator_and_its_numbers() -> None:
    model = guarded_model(4)
    atoms = cluster(5)
    calc = SchNetCalculator(model, dtype=torch.float64)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert calc._evaluator is not None
    z, pos = torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions)
    assert energy == pytest.approx(float(model(z, pos)[0]), rel=1e-12)
