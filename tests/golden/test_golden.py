"""Reference numbers written before the layered package moved any file (``tests/golden/generate.py``):
every path that computes the model must still give them, in float64."""

from __future__ import annotations

import json

import pytest
import torch

from pyg_schnet import MDEvaluator
from pyg_schnet.batching import to_dense_atoms
from pyg_schnet.nn import reference_path

from .generate import GOLDEN_FILE, build_model, loss_gradients, molecule_batch

GOLDEN = json.loads(GOLDEN_FILE.read_text())
NAMES = sorted(GOLDEN["configs"])
TOL = dict(rtol=1e-9, atol=1e-9)


def reference(name: str):
    entry = GOLDEN["configs"][name]
    return entry, build_model(entry["config"]).eval()


def as_tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-filters", "reference-modules"])
@pytest.mark.parametrize("name", NAMES)
def test_sparse_energy_and_forces(name, fast):
    entry, model = reference(name)
    inputs = molecule_batch()
    if fast:
        energy, forces = model.energy_and_forces(inputs["z"], inputs["pos"], inputs["batch"])
    else:
        with reference_path():
            energy, forces = model.energy_and_forces(inputs["z"], inputs["pos"], inputs["batch"])
    torch.testing.assert_close(energy, as_tensor(entry["energy"]), **TOL)
    torch.testing.assert_close(forces, as_tensor(entry["forces"]), **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_force_loss_gradients(name):
    entry, model = reference(name)
    inputs = molecule_batch()
    got = loss_gradients(model, inputs["z"], inputs["pos"], inputs["batch"])
    assert sorted(got) == sorted(entry["loss_gradients"]), "parameter names of the model changed"
    for key, (norm, dot) in entry["loss_gradients"].items():
        assert got[key][0] == pytest.approx(norm, rel=1e-8, abs=1e-10), key
        assert got[key][1] == pytest.approx(dot, rel=1e-8, abs=1e-10), key


@pytest.mark.parametrize("name", NAMES)
def test_dense_path(name):
    entry, model = reference(name)
    inputs = molecule_batch()
    z, pos, mask = to_dense_atoms(inputs["z"], inputs["pos"], inputs["batch"])
    energy, forces = model.energy_and_forces_dense(z, pos, mask)
    torch.testing.assert_close(energy, as_tensor(entry["energy"]), **TOL)
    torch.testing.assert_close(forces[mask], as_tensor(entry["forces"]), **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_md_evaluator_exact(name):
    entry, model = reference(name)
    inputs = molecule_batch()
    start = 0
    for g, molecule in enumerate(GOLDEN["molecules"]):
        n = len(molecule["z"])
        evaluator = MDEvaluator(model, torch.tensor(molecule["z"]), mode="exact")
        energy, forces = evaluator(inputs["pos"][start : start + n])
        torch.testing.assert_close(energy.reshape(()), as_tensor(entry["energy"][g]), **TOL)
        torch.testing.assert_close(forces, as_tensor(entry["forces"][start : start + n]), **TOL)
        start += n


@pytest.mark.parametrize("name", [n for n in NAMES if GOLDEN["configs"][n]["config"]["cutoff"] is not None])
def test_periodic_energy_forces_stress(name):
    entry, model = reference(name)
    cell = GOLDEN["periodic"]
    energy, forces, stress = model.energy_forces_stress(
        torch.tensor(cell["z"]),
        as_tensor(cell["pos"]),
        None,
        as_tensor(cell["cell"]).unsqueeze(0),
        torch.tensor(cell["pbc"]).unsqueeze(0),
    )
    torch.testing.assert_close(energy, as_tensor(entry["periodic"]["energy"]), **TOL)
    torch.testing.assert_close(forces, as_tensor(entry["periodic"]["forces"]), **TOL)
    torch.testing.assert_close(stress, as_tensor(entry["periodic"]["stress"]), **TOL)
