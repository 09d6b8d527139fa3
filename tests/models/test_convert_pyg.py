"""A PyG ``torch_geometric.nn.models.SchNet`` converted with :func:`pyg_schnet.models.convert.from_pyg`
computes PyG's energies and forces (float64), from a module and from a state_dict, through our
model, a saved file, ``SchNetCalculator`` (its MD evaluator and autograd paths) and the
``pyg-schnet convert`` command; what cannot convert exactly is refused with a message.

PyG 2.8's ``radius_graph`` needs ``pyg-lib``, which has no wheel for this torch on PyPI: where it is
missing, PyG's SchNet gets torch-cluster's ``radius_graph`` (the kernel PyG called before 2.7, same
arguments, same truncation at ``max_num_neighbors``). Nothing else of PyG's model is touched.
"""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
from torch import Tensor

from pyg_schnet import load_model, save_model
from pyg_schnet.models.convert import NotConvertibleError, from_pyg
from pyg_schnet.models.md_evaluator import supports

schnet_module = pytest.importorskip("torch_geometric.nn.models.schnet", reason="torch_geometric is not installed")
PygSchNet = schnet_module.SchNet

#: agreement relative to the largest value (the centres are PyG's bit for bit: rbf_linspace_dtype)
RTOL = 1e-6


@pytest.fixture(autouse=True)
def pyg_radius_graph(monkeypatch):
    import torch_geometric.typing

    if not torch_geometric.typing.WITH_RADIUS:
        torch_cluster = pytest.importorskip("torch_cluster", reason="PyG's radius_graph needs pyg-lib or torch-cluster")
        monkeypatch.setattr(schnet_module, "radius_graph", torch_cluster.radius_graph)


def pyg_model(seed: int = 0, perturb: float = 0.1, **hyper) -> torch.nn.Module:
    """A small PyG SchNet in float32 (as PyG builds it) with non-zero biases (PyG initialises them to 0)."""
    torch.manual_seed(seed)
    args = dict(hidden_channels=16, num_filters=12, num_interactions=2, num_gaussians=20, cutoff=5.0)
    model = PygSchNet(**{**args, **hyper})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    return model.eval()


def molecules(count: int = 4, seed: int = 1) -> List[Tuple[Tensor, Tensor]]:
    """Random molecules of 3 to 20 atoms (at most 19 neighbours, under PyG's 32), elements 1-9, atoms
    at least 0.7 Angstrom apart, in float64."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in torch.linspace(3, 20, count).round().long().tolist():
        while True:
            pos = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 1.6 * n ** (1 / 3)
            d = torch.cdist(pos, pos) + torch.eye(n, dtype=torch.float64) * 10
            if float(d.min()) > 0.7:
                break
        out.append((torch.randint(1, 10, (n,), generator=gen), pos))
    return out


def pyg_energy_and_forces(model, z: Tensor, pos: Tensor, batch=None) -> Tuple[Tensor, Tensor]:
    pos = pos.clone().requires_grad_(True)
    energy = model(z, pos, batch).view(-1)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad


def assert_close(actual: Tensor, expected: Tensor, what: str, rtol: float = RTOL) -> None:
    """Agreement to ``rtol`` of the largest magnitude of ``expected``."""
    scale = float(expected.abs().max())
    error = float((actual - expected).abs().max())
    assert error <= rtol * scale, f"{what}: max error {error:.3g} vs {rtol:g} * {scale:.3g}"


HYPER = {
    "cutoff3": dict(cutoff=3.0),
    "cutoff5-standardised": dict(cutoff=5.0, mean=-1.5, std=2.5, atomref=torch.randn(100, 1)),
    # readout="mean" (an intensive property, e.g. HOMO) -> output="intensive"
    "cutoff5-mean-readout": dict(cutoff=5.0, readout="mean", mean=0.2, std=1.3),
    "cutoff10-larger": dict(
        cutoff=10.0, hidden_channels=24, num_filters=8, num_interactions=3, num_gaussians=50, mean=0.3, std=0.7
    ),
}


@pytest.mark.parametrize("name", sorted(HYPER))
def test_converted_module_equals_pyg(name: str) -> None:
    src = pyg_model(**HYPER[name])
    ours = from_pyg(src, energy_unit="eV").double()
    src = src.double()
    assert ours.settings.filter_activation is False and ours.settings.cutoff == src.cutoff
    assert ours.settings.output == ("intensive" if HYPER[name].get("readout") == "mean" else "extensive")
    assert ours.settings.max_num_neighbors == 32 and ours.units == {"energy": "eV", "length": "Angstrom"}
    for z, pos in molecules():
        e_ref, f_ref = pyg_energy_and_forces(src, z, pos)
        e, f = ours.energy_and_forces(z, pos)
        assert_close(e, e_ref, f"{name}: energy of {len(z)} atoms")
        assert_close(f, f_ref, f"{name}: forces of {len(z)} atoms")
    batch_z = torch.cat([z for z, _ in molecules()])
    batch_pos = torch.cat([p for _, p in molecules()])
    batch = torch.cat([torch.full((len(z),), g) for g, (z, _) in enumerate(molecules())])
    e_ref, f_ref = pyg_energy_and_forces(src, batch_z, batch_pos, batch)
    e, f = ours.energy_and_forces(batch_z, batch_pos, batch)
    assert_close(e, e_ref, f"{name}: batch energies")
    assert_close(f, f_ref, f"{name}: batch forces")


def test_centres_are_pygs_bit_for_bit() -> None:
    src = pyg_model(cutoff=4.7, num_gaussians=33)
    ours = from_pyg(src, energy_unit="eV")
    assert ours.settings.rbf_linspace_dtype == "float32"
    assert torch.equal(ours.representation.rbf.centers, src.distance_expansion.offset.double())
    assert ours.representation.rbf.gamma == -src.distance_expansion.coeff


def test_state_dict_conversion_equals_module_conversion() -> None:
    hyper = dict(cutoff=4.0, mean=-2.0, std=3.0, atomref=torch.randn(100, 1), max_num_neighbors=20)
    src = pyg_model(**hyper)
    from_module = from_pyg(src, energy_unit="kcal/mol")
    from_state = from_pyg(
        src.state_dict(), energy_unit="kcal/mol", cutoff=4.0, mean=-2.0, std=3.0, max_num_neighbors=20
    )
    assert from_state.config == from_module.config
    for key, value in from_module.state_dict().items():
        assert torch.equal(from_state.state_dict()[key], value), key
    # sizes come from the tensors; a contradicting one is refused
    with pytest.raises(NotConvertibleError, match="hidden_channels=32 does not match the state_dict"):
        from_pyg(src.state_dict(), energy_unit="eV", cutoff=4.0, hidden_channels=32)
    with pytest.raises(TypeError, match="unknown PyG SchNet hyper-parameters: \\['cut_off'\\]"):
        from_pyg(src.state_dict(), energy_unit="eV", cut_off=4.0)
    with pytest.raises(TypeError, match="apply to a state_dict only"):
        from_pyg(src, energy_unit="eV", cutoff=4.0)


def test_negative_std_and_scale_fold_into_the_head() -> None:
    src = pyg_model(mean=0.5, std=-1.5, atomref=torch.randn(100, 1))
    src.scale = 0.25  # what from_qm9_pretrained sets (a unit conversion)
    ours = from_pyg(src, energy_unit="eV").double()
    src = src.double()
    assert float(ours.std) == pytest.approx(1.5 * 0.25)
    for z, pos in molecules(2):
        e_ref, f_ref = pyg_energy_and_forces(src, z, pos)
        e, f = ours.energy_and_forces(z, pos)
        assert_close(e, e_ref, "energy")
        assert_close(f, f_ref, "forces")


def test_saved_model_runs_in_the_calculator_with_pygs_numbers(tmp_path) -> None:
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    src = pyg_model(mean=-1.0, std=2.0, atomref=torch.randn(100, 1))
    path = save_model(from_pyg(src, energy_unit="eV"), tmp_path / "model.pt")
    loaded = load_model(path)
    assert supports(loaded) is None  # the MD evaluator computes it
    assert loaded.units == {"energy": "eV", "length": "Angstrom"} and loaded.config["filter_activation"] is False
    src = src.double()
    for method in ("exact", "autograd"):
        calc = SchNetCalculator(path, method=method)
        assert calc.fallback_reason is None
        for z, pos in molecules(3, seed=5):
            e_ref, f_ref = pyg_energy_and_forces(src, z, pos)
            atoms = Atoms(numbers=z.numpy(), positions=pos.numpy(), calculator=calc)
            energy = torch.tensor([atoms.get_potential_energy()], dtype=torch.float64)
            forces = torch.as_tensor(atoms.get_forces())
            assert_close(energy, e_ref, f"{method}: energy of {len(z)} atoms")
            assert_close(forces, f_ref, f"{method}: forces of {len(z)} atoms")


def dense_cluster(n: int = 40) -> Tuple[Tensor, Tensor]:
    """``n`` atoms in a 4 Angstrom box: everyone within 10 Angstrom of everyone (n - 1 neighbours)."""
    gen = torch.Generator().manual_seed(3)
    side = round(n ** (1 / 3)) + 1
    grid = torch.stack(torch.meshgrid(*[torch.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    pos = grid.double() * (4.0 / side) + 0.05 * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return torch.ones(n, dtype=torch.long), pos


def test_more_neighbours_than_pyg_keeps_raise_unless_the_guard_is_dropped() -> None:
    src = pyg_model(cutoff=10.0, max_num_neighbors=32)
    z, pos = dense_cluster(40)
    guarded = from_pyg(src, energy_unit="eV").double()
    with pytest.raises(ValueError, match="has 39 neighbours within the cutoff, more than max_num_neighbors=32"):
        guarded.energy_and_forces(z, pos)
    unguarded = from_pyg(src, energy_unit="eV", neighbor_guard=False).double()
    assert unguarded.settings.max_num_neighbors is None
    e, _ = unguarded.energy_and_forces(z, pos)
    e_pyg, _ = pyg_energy_and_forces(src.double(), z, pos)
    assert not torch.allclose(e, e_pyg)  # PyG dropped neighbours: a different number, which the guard refuses
    # under the limit the guard changes nothing
    for z, pos in molecules(2):
        torch.testing.assert_close(guarded(z, pos), unguarded(z, pos), rtol=0, atol=0)


def test_refusals_name_the_part() -> None:
    with pytest.raises(NotConvertibleError, match="dipole=True"):
        from_pyg(pyg_model(dipole=True), energy_unit="eV")
    with pytest.raises(NotConvertibleError, match="readout='mean' with an atomref: our intensive head"):
        from_pyg(pyg_model(readout="mean", atomref=torch.randn(100, 1)), energy_unit="eV")
    with pytest.raises(NotConvertibleError, match="readout MaxAggregation: ours sums atom contributions"):
        from_pyg(pyg_model(readout="max"), energy_unit="eV")
    graph = schnet_module.RadiusInteractionGraph(5.0, 32)
    with pytest.raises(NotConvertibleError, match="interaction_graph is a function: a custom interaction graph"):
        from_pyg(pyg_model(interaction_graph=lambda pos, batch: graph(pos, batch)), energy_unit="eV")
    with pytest.raises(NotConvertibleError, match="a custom interaction graph"):
        from_pyg(pyg_model().state_dict(), energy_unit="eV", interaction_graph=graph)

    class MySchNet(PygSchNet):
        pass

    with pytest.raises(NotConvertibleError, match="MySchNet, not torch_geometric.nn.models.SchNet itself"):
        from_pyg(MySchNet(hidden_channels=8, num_filters=8, num_interactions=1), energy_unit="eV")
    with pytest.raises(ValueError, match="energy_unit is required: a PyG model does not record"):
        from_pyg(pyg_model(), energy_unit="")
    with pytest.raises(NotConvertibleError, match="energy scale 0.0"):
        from_pyg(pyg_model(mean=1.0, std=0.0), energy_unit="eV")
    edited = pyg_model()
    with torch.no_grad():
        edited.distance_expansion.offset[3] += 0.01
    with pytest.raises(NotConvertibleError, match="centre 3 is 0.01 Angstrom off the grid"):
        from_pyg(edited, energy_unit="eV")
    with pytest.raises(ValueError, match="no 'embedding.weight'"):
        from_pyg({"lin1.weight": torch.zeros(1)}, energy_unit="eV")


def test_convert_command(tmp_path, capsys) -> None:
    from pyg_schnet.experiments.convert_command import main

    src = pyg_model(cutoff=4.0, mean=-1.0, std=2.0, atomref=torch.randn(100, 1))
    state = tmp_path / "pyg_state.pt"
    torch.save(src.state_dict(), state)
    module_file = tmp_path / "pyg_module.pt"
    torch.save(src, module_file)
    out = tmp_path / "model.pt"
    args = [str(state), str(out), "--energy-unit", "kcal/mol", "--cutoff", "4", "--mean", "-1", "--std", "2"]
    summary = main(args)
    assert summary["source"] == "pyg" and summary["units"]["energy"] == "kcal/mol"
    assert "converted" in capsys.readouterr().out
    expected = from_pyg(src, energy_unit="kcal/mol")
    loaded = load_model(out)
    assert loaded.config == expected.config
    z, pos = molecules(1)[0]
    torch.testing.assert_close(loaded(z, pos.float()), expected(z, pos.float()), rtol=0, atol=0)

    with pytest.raises(FileExistsError, match="pass --overwrite"):
        main(args)
    with pytest.raises(ValueError, match="pickled module .* only with --trust-pickle"):
        main([str(module_file), str(tmp_path / "m2.pt"), "--energy-unit", "eV"])
    with pytest.raises(ValueError, match="unknown unit 'electronvolt'"):
        main([str(state), str(tmp_path / "m3.pt"), "--energy-unit", "electronvolt"])
    main([str(module_file), str(out), "--energy-unit", "kcal/mol", "--trust-pickle", "--overwrite"])
    torch.testing.assert_close(load_model(out)(z, pos.float()), expected(z, pos.float()), rtol=0, atol=0)
    with pytest.raises(ValueError, match="apply to a state_dict only"):
        main([str(module_file), str(tmp_path / "m4.pt"), "--energy-unit", "eV", "--trust-pickle", "--cutoff", "4"])
    assert not (tmp_path / "m2.pt").exists() and not (tmp_path / "m4.pt").exists()
