"""The MD evaluator is an explicit conversion of the paper's SchNet: it equals the model for every
configuration it supports and refuses, with the reason, any model whose parts were swapped; the ASE
calculator then computes what the model's own forward computes and says so once."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from pyg_schnet import MDEvaluator, SchNet
from pyg_schnet.models.md_evaluator import supports
from pyg_schnet.nn import AtomwiseEnergy, InteractionBlock


def small_model(**options) -> SchNet:
    torch.manual_seed(0)
    config = dict(
        hidden_channels=12,
        num_filters=8,
        num_interactions=2,
        num_gaussians=30,
        rbf_stop=6.0,
        gamma=5.0,
        output_hidden=6,
    )
    config.update(options)
    model = SchNet(**config).double().eval()
    model.set_standardization(-2.0, 1.5, torch.linspace(-1.0, 1.0, model.max_z))
    return model


CONFIGS = {
    "all pairs": {},
    "cutoff": dict(cutoff=4.0),
    "no interaction": dict(num_interactions=0),
    "one block, cutoff": dict(num_interactions=1, cutoff=3.0),
    "wide filters": dict(hidden_channels=8, num_filters=16, num_interactions=3),
    "one Gaussian": dict(num_gaussians=1),
    "paper": dict(
        hidden_channels=64,
        num_filters=64,
        num_interactions=3,
        num_gaussians=301,
        rbf_stop=30.0,
        gamma=10.0,
        output_hidden=32,
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_exact_mode_equals_the_model_for_every_supported_configuration(name, molecules):
    model = small_model(**CONFIGS[name])
    assert supports(model) is None
    z, pos = molecules[1]  # ethanol, distorted
    energy, forces = MDEvaluator(model, z)(pos)
    ref_e, ref_f = model.energy_and_forces(z, pos)
    torch.testing.assert_close(energy, ref_e, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(forces, ref_f, rtol=1e-10, atol=1e-10)


class DoubledEnergy(SchNet):
    def forward(self, z, pos, batch=None, cell=None, pbc=None):
        return 2.0 * super().forward(z, pos, batch, cell, pbc)


class ScaledBlock(InteractionBlock):
    def forward(self, x, edge_index, edge_weight, edge_attr, mirrored=False, filters=None):
        return x + 0.5 * self.residual(x, edge_index, edge_weight, edge_attr, mirrored, filters)


class ShiftedHead(AtomwiseEnergy):
    def atom_energies(self, x, z):
        return super().atom_energies(x, z) + 1.0


def _subclass(model: SchNet) -> SchNet:
    other = DoubledEnergy(**model.config).double().eval()
    other.load_state_dict(model.state_dict())
    return other


def _swap_block(model: SchNet) -> SchNet:
    old = model.representation.interactions[1]
    new = ScaledBlock(12, 30, 8).double()
    new.load_state_dict(old.state_dict())
    model.representation.interactions[1] = new
    return model


def _swap_head(model: SchNet) -> SchNet:
    new = ShiftedHead(12, 6, model.max_z).double()
    new.load_state_dict(model.head.state_dict())
    model.head = new
    return model


def _set(path: str, module: nn.Module):
    def apply(model: SchNet) -> SchNet:
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        if name.isdigit():
            parent[int(name)] = module
        else:
            setattr(parent, name, module)
        return model

    return apply


def _hook(model: SchNet) -> SchNet:
    model.representation.interactions[0].register_forward_hook(lambda module, args, out: out * 1.1)
    return model


SWAPS = {
    "SchNet subclass with its own forward": (_subclass, "DoubledEnergy, not a pyg_schnet SchNet itself"),
    "interaction block": (_swap_block, r"interactions\[1\] is a ScaledBlock, not an InteractionBlock"),
    "block activation": (_set("representation.interactions.0.act", nn.Tanh()), r"interactions\[0\].act is a Tanh"),
    "filter activation": (_set("representation.interactions.1.conv.filter_network.1", nn.SiLU()), "filter network"),
    "block dense layer": (
        _set("representation.interactions.0.out", nn.Linear(12, 12).double()),
        r"interactions\[0\].out is a Linear",
    ),
    "head": (_swap_head, "model.head is a ShiftedHead, not an AtomwiseEnergy"),
    "head activation": (_set("head.net.1", nn.Tanh()), "Dense -> ShiftedSoftplus -> Dense"),
    "forward hook": (_hook, r"interactions.0 has forward hooks"),
}


@pytest.mark.parametrize("name", sorted(SWAPS))
def test_a_swapped_part_makes_the_evaluator_refuse_with_the_reason(name, molecules):
    swap, reason = SWAPS[name]
    model = swap(small_model())
    z, pos = molecules[3]  # methane, distorted
    assert supports(model) is not None
    with pytest.raises(ValueError, match=f"MDEvaluator cannot evaluate this model: .*{reason}"):
        MDEvaluator(model, z)
    # the swap changes what the model computes, so refusing is not overcautious
    plain_energy, _ = small_model().energy_and_forces(z, pos)
    swapped_energy, _ = model.energy_and_forces(z, pos)
    assert not torch.allclose(plain_energy, swapped_energy)


@pytest.mark.parametrize("name", sorted(SWAPS))
def test_the_calculator_computes_what_the_model_computes_and_says_so_once(name):
    from ase.build import molecule

    from pyg_schnet.simulation.ase import AutogradFallbackWarning, SchNetCalculator

    swap, reason = SWAPS[name]
    model = swap(small_model())
    atoms = molecule("CH3CH2OH")
    with pytest.warns(AutogradFallbackWarning, match=reason) as record:
        atoms.calc = SchNetCalculator(model, energy_unit="eV")
    assert len(record) == 1 and atoms.calc.fallback_reason is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutogradFallbackWarning)
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        atoms.positions[0, 0] += 0.01
        atoms.get_potential_energy()  # a second call: no second announcement
    z = torch.as_tensor(molecule("CH3CH2OH").numbers)
    pos = torch.as_tensor(molecule("CH3CH2OH").positions)
    ref_e, ref_f = model.energy_and_forces(z, pos)
    assert energy == pytest.approx(float(ref_e[0]), rel=1e-12, abs=1e-12)
    assert forces == pytest.approx(ref_f.numpy(), rel=1e-10, abs=1e-10)


def test_a_subclass_that_doubles_the_energy_gets_its_doubled_energy():
    from ase.build import molecule

    from pyg_schnet.simulation.ase import AutogradFallbackWarning, SchNetCalculator

    plain = small_model()
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(plain, energy_unit="eV")
    single = atoms.get_potential_energy()
    with pytest.warns(AutogradFallbackWarning):
        atoms.calc = SchNetCalculator(_subclass(plain), energy_unit="eV")
    assert atoms.get_potential_energy() == pytest.approx(2.0 * single, rel=1e-12)


def test_a_plain_model_uses_the_evaluator_without_a_word():
    from ase.build import molecule

    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = molecule("CH3CH2OH")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.calc = SchNetCalculator(small_model(), energy_unit="eV")
        atoms.get_potential_energy()
    assert atoms.calc.fallback_reason is None and atoms.calc._evaluator is not None
