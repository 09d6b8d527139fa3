"""MDEvaluator (the MD call without autograd) against SchNet.energy_and_forces, and its tabulated mode."""

import numpy as np
import pytest
import torch

from pyg_schnet import SchNet
from pyg_schnet.models import md_evaluator as inference
from pyg_schnet.models.md_evaluator import MDEvaluator

COMMON = dict(hidden_channels=32, num_filters=32, num_interactions=3, num_gaussians=50, rbf_stop=10.0, cutoff=10.0)


def model_of(dtype=torch.float64, seed=0, **cfg) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet.from_paper(**cfg).to(dtype).eval()
    atomref = torch.randn(100, dtype=torch.float64)
    model.set_standardization(-37.0, 2.5, atomref)
    return model


def assert_same(result, reference, rtol, atol):
    torch.testing.assert_close(result[0], reference[0], rtol=rtol, atol=atol)
    torch.testing.assert_close(result[1], reference[1], rtol=rtol, atol=atol)


@pytest.mark.parametrize("cfg", [{}, dict(cutoff=2.5), COMMON], ids=["paper", "cutoff2.5", "common"])
def test_exact_equals_model_float64(molecules, cfg):
    model = model_of(**cfg)
    for z, pos in molecules:
        ev = MDEvaluator(model, z)
        assert_same(ev(pos), model.energy_and_forces(z, pos), rtol=0, atol=1e-10)


@pytest.mark.parametrize("cfg", [{}, COMMON], ids=["paper", "common"])
def test_exact_equals_model_float32(molecules, cfg):
    model = model_of(torch.float32, **cfg)
    for z, pos in molecules:
        pos = pos.float()
        e, f = MDEvaluator(model, z)(pos)
        e_ref, f_ref = model.energy_and_forces(z, pos)
        assert e.dtype == f.dtype == torch.float32
        torch.testing.assert_close(e, e_ref, rtol=1e-5, atol=0)
        scale = f_ref.abs().max()
        assert (f - f_ref).abs().max() <= 1e-5 * scale


def test_large_molecule_uses_index_path_and_matches(monkeypatch, molecules):
    """Above DENSE_INCIDENCE_MAX the gathers/scatters are index operations: same results."""
    monkeypatch.setattr(inference, "DENSE_INCIDENCE_MAX", 0)
    monkeypatch.setattr(inference, "ALL_PAIRS_MAX_ATOMS", 0)
    model = model_of(cutoff=3.0)
    z, pos = molecules[2]  # benzene
    ev = MDEvaluator(model, z)
    assert_same(ev(pos), model.energy_and_forces(z, pos), rtol=0, atol=1e-10)
    assert not ev._edge_cache.dense


def test_verlet_list_follows_moving_atoms(molecules, monkeypatch):
    """With a cutoff, pairs enter and leave the cutoff along a trajectory (list rebuilt after skin/2)."""
    monkeypatch.setattr(inference, "ALL_PAIRS_MAX_ATOMS", 0)  # ethanol would keep all its pairs
    model = model_of(cutoff=2.0)
    z, pos = molecules[1]
    ev = MDEvaluator(model, z, skin=0.4)
    gen = torch.Generator().manual_seed(1)
    rebuilt = 0
    for _ in range(12):
        pos = pos + 0.08 * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)
        before = ev._edge_cache
        assert_same(ev(pos), model.energy_and_forces(z, pos), rtol=0, atol=1e-10)
        rebuilt += ev._edge_cache is not before
    assert 1 < rebuilt < 12


def test_refresh_after_reset_parameters(molecules):
    model = model_of()
    z, pos = molecules[0]
    ev = MDEvaluator(model, z)
    old = ev(pos)
    model.reset_parameters()
    ev.refresh()
    new = ev(pos)
    assert_same(new, model.energy_and_forces(z, pos), rtol=0, atol=1e-10)
    assert not torch.allclose(new[1], old[1])


@pytest.mark.parametrize("cfg", [{}, COMMON], ids=["paper", "common"])
def test_tabulated_forces_are_gradient_of_its_energy(molecules, cfg):
    """Central differences of the tabulated energy give its forces (energy conservation in MD)."""
    model = model_of(**cfg)
    z, pos = molecules[1]
    ev = MDEvaluator(model, z, mode="tabulated", spacing=0.05)  # coarse grid: the spline must still be consistent
    _, forces = ev(pos)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (8, 2)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(ev(plus)[0] - ev(minus)[0]) / (2 * h)
        assert abs(float(fd) - float(forces[atom, axis])) < 1e-7


def test_tabulation_error_within_stated_bound():
    """Per filter entry, the interpolation error of value and derivative stays below the bound."""
    model = model_of()
    for spacing in (0.02, 0.01):
        ev = MDEvaluator(model, torch.tensor([6, 1]), mode="tabulated", spacing=spacing)
        d = torch.linspace(0.3, 33.0, 4001, dtype=torch.float64)
        w_tab, dw_tab = ev._filters_tabulated(d)
        w, dw = ev._filters_exact(d)
        bound_w, bound_dw = ev.tabulation_error_bound()
        assert (w_tab - w).abs().max() <= bound_w
        assert (dw_tab - dw).abs().max() <= bound_dw
        assert bound_w < 1e-6


def test_tabulated_on_md17_ethanol_frames(shared_data):
    """Tabulated vs exact on real ethanol frames, float64, for a random paper model standardised like a
    trained one (MD17 mean energy per atom) and rescaled so its forces have the data's RMS magnitude."""
    data = np.load(shared_data / "md17" / "md17_ethanol.npz")
    z = torch.as_tensor(data["z"])
    frames = torch.as_tensor(data["R"][::5])  # 300 of the 1,500 frames
    rms_data = float(np.sqrt((data["F"] ** 2).mean()))
    model = model_of()
    model.set_standardization(float(data["E"].mean()) / 9, 1.0)
    exact = MDEvaluator(model, z)
    rms_model = float(torch.stack([exact(p)[1] for p in frames[:20]]).square().mean().sqrt())
    model.set_standardization(float(data["E"].mean()) / 9, rms_data / rms_model)
    exact.refresh()
    tab = MDEvaluator(model, z, mode="tabulated")
    e_err = f_err = 0.0
    f_scale = 0.0
    for pos in frames:
        e0, f0 = exact(pos)
        e1, f1 = tab(pos)
        e_err = max(e_err, float((e1 - e0).abs()))
        f_err = max(f_err, float((f1 - f0).abs().max()))
        f_scale = max(f_scale, float(f0.abs().max()))
    assert f_scale > 10.0  # forces of the data's size, so the check is not trivially small
    assert e_err <= 1e-4  # kcal/mol per molecule
    assert f_err <= 1e-4  # kcal/mol/Angstrom


@pytest.mark.parametrize("mode", ["exact", "tabulated"])
def test_bad_positions_raise_clear_errors(molecules, mode):
    model = model_of()
    z, pos = molecules[1]
    ev = MDEvaluator(model, z, mode=mode, spacing=0.05)
    bad = pos.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match="atom 4"):
        ev(bad)
    same = pos.clone()
    same[6] = same[2]
    with pytest.raises(ValueError, match="atoms 2 and 6"):
        ev(same)
    far = pos.clone()
    far[7, 0] = 3e4
    with pytest.raises(ValueError, match="atom 7.*MAX_ABS_POSITION"):
        ev(far)
    with pytest.raises(ValueError, match=r"\[9, 3\]"):
        ev(pos[:5])


def test_periodic_input_not_implemented(molecules):
    model = model_of(cutoff=3.0)
    z, pos = molecules[1]
    ev = MDEvaluator(model, z)
    cell = torch.eye(3, dtype=torch.float64) * 10
    with pytest.raises(NotImplementedError, match="energy_and_forces"):
        ev(pos, cell, torch.tensor([True, True, True]))
    # all-False pbc is a molecule
    assert_same(ev(pos, cell, torch.tensor([False, False, False])), model.energy_and_forces(z, pos), rtol=0, atol=1e-10)


def test_bad_construction_arguments():
    model = model_of()
    with pytest.raises(ValueError, match="mode"):
        MDEvaluator(model, torch.tensor([1, 8]), mode="fast")
    with pytest.raises(ValueError, match="atomic number"):
        MDEvaluator(model, torch.tensor([1, 200]))
    with pytest.raises(ValueError, match="spacing"):
        MDEvaluator(model, torch.tensor([1, 8]), mode="tabulated", spacing=0.0)


@pytest.mark.parametrize("cfg", [{}, COMMON], ids=["paper", "common"])
def test_tabulated_beyond_the_table(cfg):
    """Distances past the table's end (no cutoff: the filter is flat there; cutoff: it is zero)."""
    model = model_of(**cfg)
    z = torch.tensor([1, 6, 8])
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 45.0, 0.0]], dtype=torch.float64)
    e_tab, f_tab = MDEvaluator(model, z, mode="tabulated")(pos)
    e, f = model.energy_and_forces(z, pos)
    torch.testing.assert_close(e_tab, e, rtol=0, atol=1e-8)
    torch.testing.assert_close(f_tab, f, rtol=0, atol=1e-6)
    assert f_tab[2].abs().max() < 1e-12  # the far atom feels no force


def test_tabulated_table_too_large_falls_back_to_exact(molecules):
    """Issue 20, item 9: a small gamma widens every Gaussian (the table spans 0..964 Angstrom at 1e-4,
    0..295,000 at 1e-9): the size is computed before anything is allocated and the evaluator computes
    the filters exactly, saying why."""
    z, pos = molecules[1]
    for gamma in (1e-4, 1e-9):
        model = model_of(gamma=gamma)
        with pytest.warns(inference.TabulationFallbackWarning, match=r"GiB.*max_table_bytes.*mode='exact'"):
            ev = MDEvaluator(model, z, mode="tabulated")
        assert ev.mode == "exact" and ev._table is None
        assert f"gamma = {gamma:g}" in ev.fallback_reason
        assert_same(ev(pos), MDEvaluator(model, z)(pos), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not in tabulated mode"):
        ev.tabulation_error_bound()


def test_table_limit_is_a_bound_on_what_is_built(molecules):
    z, pos = molecules[1]
    model = model_of()
    ev = MDEvaluator(model, z, mode="tabulated")  # the paper's Gaussians: well within the default limit
    assert ev.mode == "tabulated" and ev.fallback_reason is None
    width = ev.num_blocks * ev.num_filters
    need = inference.table_bytes(ev._table_end(), ev.spacing, ev.weights.num_gaussians, width)
    assert 2 * ev._table.numel() * 8 <= need <= inference.MAX_TABLE_BYTES
    with pytest.warns(inference.TabulationFallbackWarning, match="limit of"):
        small = MDEvaluator(model, z, mode="tabulated", max_table_bytes=need - 1)
    assert small.mode == "exact"


def test_calculator_tabulated_small_gamma_warns_and_computes_exactly(molecules):
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    z, pos = molecules[1]
    model = model_of(gamma=1e-4)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = SchNetCalculator(model, method="tabulated")
    with pytest.warns(inference.TabulationFallbackWarning, match="gamma = 0.0001"):
        energy = atoms.get_potential_energy()
    exact = atoms.copy()
    exact.calc = SchNetCalculator(model, method="exact")
    assert energy == exact.get_potential_energy()


def test_non_finite_weights_still_raise_on_the_host_path(molecules):
    """With positions on the host the result is not read from the device; weights that are not finite
    (checked once, at refresh) bring the check back."""
    z, pos = molecules[1]
    model = model_of()
    with torch.no_grad():
        model.head.hidden_layer.weight[0, 0] = float("inf")
    ev = MDEvaluator(model, z)
    assert not ev._weights_finite
    with pytest.raises(FloatingPointError, match="not finite for finite, distinct positions"):
        ev(pos)


def test_forces_under_inference_mode_say_why_they_cannot_be_computed():
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, cutoff=3.0).double()
    z = torch.tensor([8, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
    with torch.no_grad():  # not the problem: gradients for the positions are switched on inside
        _, forces = model.energy_and_forces(z, pos)
    assert torch.isfinite(forces).all()
    with (
        torch.inference_mode(),
        pytest.raises(RuntimeError, match=r"energy_and_forces under torch\.inference_mode\(\)"),
    ):
        model.energy_and_forces(z, pos)
    cell = 5.0 * torch.eye(3, dtype=torch.float64)[None]
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"energy_forces_stress under torch\.inference_mode"):
        model.energy_forces_stress(z, pos, None, cell, torch.ones(1, 3, dtype=torch.bool))
