"""``filter_activation=False`` (a linear second filter layer, PyG's and SchNetPack's SchNet): every
computation path of the model computes the same function, and that function is the one the modules
spell out (not the paper's)."""

from __future__ import annotations

import pytest
import torch

from pyg_schnet import SchNet, SchNetConfig, load_model, save_model
from pyg_schnet.backend import reference_path
from pyg_schnet.batching import to_dense_atoms
from pyg_schnet.models.md_evaluator import MDEvaluator, supports
from pyg_schnet.nn import FilterNetwork, ShiftedSoftplus, shifted_softplus

SMALL = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=25, rbf_stop=6.0, gamma=2.0)


def model_of(**cfg) -> SchNet:
    torch.manual_seed(0)
    model = SchNet(**{**SMALL, **cfg}).double().eval()
    model.set_standardization(-3.0, 1.5, torch.randn(100, dtype=torch.float64))
    return model


def test_filter_network_without_last_activation_is_linear_in_its_second_layer() -> None:
    torch.manual_seed(1)
    net = FilterNetwork(25, 8, last_activation=False).double()
    e = torch.rand(7, 25, dtype=torch.float64)
    expected = net.second(shifted_softplus(net.first(e)))
    torch.testing.assert_close(net(e), expected, rtol=0, atol=0)
    assert len(net) == 3 and not net.last_activation
    assert FilterNetwork(25, 8).last_activation and type(FilterNetwork(25, 8)[3]) is ShiftedSoftplus


def test_the_flag_changes_the_model(molecules) -> None:
    z, pos = molecules[1]
    paper, linear = model_of(), model_of(filter_activation=False)
    linear.load_state_dict(paper.state_dict())  # same parameters (the activation has none)
    assert not torch.allclose(paper(z, pos), linear(z, pos))


@pytest.mark.parametrize("cutoff", [None, 3.0], ids=["all-pairs", "cutoff3"])
def test_every_path_computes_the_same_function(molecules, cutoff) -> None:
    model = model_of(filter_activation=False, cutoff=cutoff)
    assert supports(model) is None
    for z, pos in molecules:
        e, f = model.energy_and_forces(z, pos)
        with reference_path():
            e_ref, f_ref = model.energy_and_forces(z, pos)
        torch.testing.assert_close(e, e_ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(f, f_ref, rtol=0, atol=1e-10)
        dense = to_dense_atoms(z, pos)
        e_dense, f_dense = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
        torch.testing.assert_close(e_dense, e_ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(f_dense[dense.mask], f_ref, rtol=0, atol=1e-10)
        e_md, f_md = MDEvaluator(model, z)(pos)
        torch.testing.assert_close(e_md, e_ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(f_md, f_ref, rtol=0, atol=1e-10)
        e_tab, f_tab = MDEvaluator(model, z, mode="tabulated")(pos)
        torch.testing.assert_close(e_tab, e_ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(f_tab, f_ref, rtol=1e-5, atol=1e-5)


def test_the_flag_travels_with_the_model_file(tmp_path, molecules) -> None:
    model = model_of(filter_activation=False, cutoff=4.0)
    model.units = {"energy": "eV", "length": "Angstrom"}
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt").double()
    assert loaded.settings.filter_activation is False
    z, pos = molecules[0]
    # the file holds float32 numbers (the float64 atomrefs are rounded on saving)
    torch.testing.assert_close(loaded(z, pos), model(z, pos), rtol=1e-7, atol=0)


def test_a_config_without_the_field_is_the_paper_and_a_non_bool_is_refused() -> None:
    options = SchNetConfig().as_dict()
    del options["filter_activation"]  # a config dict as files before 0.5 store it
    assert SchNetConfig.from_dict(options).filter_activation is True
    with pytest.raises(TypeError, match="filter_activation must be True or False, got 'no'"):
        SchNetConfig(filter_activation="no")  # type: ignore[arg-type]


def test_silu_head_computes_silu_and_the_fast_paths_step_aside(tmp_path, molecules) -> None:
    """``head_activation="silu"`` (SchNetPack 2's default head): the head is W2 silu(W1 x + b1) + b2; the
    MD evaluator and the exporter, which compute the paper's head, say so instead of computing it."""
    from pyg_schnet.io.export import export_model
    from pyg_schnet.simulation.ase import SchNetCalculator

    model = model_of(head_activation="silu", cutoff=4.0)
    model.units = {"energy": "eV", "length": "Angstrom"}
    z, pos = molecules[1]
    x = model.representation(z, pos, torch.zeros_like(z))
    head = model.head
    expected = head.std * head.output_layer(torch.nn.functional.silu(head.hidden_layer(x))).squeeze(-1)
    expected = (expected + head.mean + head.atomref[z]).sum()
    torch.testing.assert_close(model(z, pos)[0], expected, rtol=1e-12, atol=0)
    assert "ShiftedSoftplus" in (supports(model) or "")
    save_model(model, tmp_path / "model.pt")
    assert load_model(tmp_path / "model.pt").settings.head_activation == "silu"
    from ase import Atoms

    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    with pytest.warns(UserWarning):  # the calculator falls back to autograd, and says why
        atoms.calc = SchNetCalculator(model, dtype=torch.float64, method="exact")
        energy = atoms.get_potential_energy()
    assert energy == pytest.approx(float(model(z, pos)[0]), rel=1e-12)
    with pytest.raises(Exception, match="head_activation"):
        export_model(model, tmp_path / "model.pt2")
    with pytest.raises(ValueError, match="head_activation must be 'shifted_softplus' or 'silu', got 'relu'"):
        SchNetConfig(head_activation="relu")
