"""A SchNetPack 2 SchNet potential converted with :func:`pyg_schnet.models.convert.from_schnetpack`
computes SchNetPack's energies and forces (float64, SchNetPack's inputs from its own
``AtomsConverter`` and ``ASENeighborList``); what cannot convert exactly is refused.

SchNetPack does not install next to torch 2.13 (docs/benchmarks.md): this file skips where it cannot be
imported, and ``tests/models/test_convert_schnetpack_side_env.py`` runs it in the side environment
(``/work/venv-spk``, with this checkout on ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import List

import numpy as np
import pytest
import torch

from pyg_schnet import load_model
from pyg_schnet.models.convert import NotConvertibleError, from_schnetpack, import_schnetpack

try:
    spk = import_schnetpack()
except ImportError as exc:
    pytest.skip(f"schnetpack cannot be imported in this Python ({exc})", allow_module_level=True)

import schnetpack.transform as trn  # noqa: E402
from ase import Atoms  # noqa: E402

RTOL = 1e-6


def spk_model(
    cutoff: float = 5.0,
    mean: float = None,
    atomrefs: bool = False,
    head_activation=None,
    shared: bool = False,
    n_layers: int = 2,
    postprocessors=None,
    seed: int = 0,
):
    """A small SchNetPack SchNet NNP in float32 (as SchNetPack builds it), biases perturbed off zero."""
    torch.manual_seed(seed)
    rep = spk.representation.SchNet(
        n_atom_basis=16,
        n_interactions=2,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
        n_filters=12,
        shared_interactions=shared,
    )
    head = spk.atomistic.Atomwise(
        n_in=16, output_key="energy", n_layers=n_layers, activation=head_activation or spk.nn.shifted_softplus
    )
    pps = [trn.CastTo64()]
    if mean is not None or atomrefs:
        offsets = trn.AddOffsets(
            "energy", add_mean=mean is not None, add_atomrefs=atomrefs, property_mean=torch.tensor([mean or 0.0])
        )
        if atomrefs:  # AddOffsets(atomrefs=tensor) fails in 2.1.1 (`tensor or zeros`); a data module sets it so
            offsets.atomref = torch.randn(100)
        pps.append(offsets)
    model = spk.model.NeuralNetworkPotential(
        representation=rep,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[head, spk.atomistic.Forces()],
        postprocessors=pps + list(postprocessors or []),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def structures(count: int = 4, seed: int = 1) -> List[Atoms]:
    """Random molecules of 3 to 20 atoms, elements 1-9, atoms at least 0.7 Angstrom apart."""
    rng = np.random.default_rng(seed)
    out = []
    for n in np.linspace(3, 20, count).round().astype(int):
        while True:
            pos = rng.random((n, 3)) * 1.6 * n ** (1 / 3)
            d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 10 * np.eye(n)
            if d.min() > 0.7:
                break
        out.append(Atoms(numbers=rng.integers(1, 10, n), positions=pos))
    return out


def assert_close(actual, expected, what: str) -> None:
    scale = float(expected.abs().max())
    error = float((actual - expected).abs().max())
    assert error <= RTOL * scale, f"{what}: max error {error:.3g} vs {RTOL:g} * {scale:.3g}"


def compare(model, ours, cutoff: float, what: str) -> None:
    model = model.double()
    ours = ours.double()
    converter = spk.interfaces.AtomsConverter(neighbor_list=trn.ASENeighborList(cutoff=cutoff), dtype=torch.float64)
    for atoms in structures():
        result = model(converter(atoms))
        z = torch.as_tensor(atoms.numbers)
        e, f = ours.energy_and_forces(z, torch.as_tensor(atoms.positions))
        assert_close(e, result["energy"].detach(), f"{what}: energy of {len(atoms)} atoms")
        assert_close(f, result["forces"].detach(), f"{what}: forces of {len(atoms)} atoms")
    batch = structures()
    result = model(converter(batch))
    z = torch.cat([torch.as_tensor(a.numbers) for a in batch])
    pos = torch.cat([torch.as_tensor(a.positions) for a in batch])
    index = torch.cat([torch.full((len(a),), g) for g, a in enumerate(batch)])
    e, f = ours.energy_and_forces(z, pos, index)
    assert_close(e, result["energy"].detach(), f"{what}: batch energies")
    assert_close(f, result["forces"].detach(), f"{what}: batch forces")


CASES = {
    "cutoff3": dict(cutoff=3.0),
    "cutoff5-mean": dict(cutoff=5.0, mean=-1.5),
    "cutoff5-mean-atomrefs": dict(cutoff=5.0, mean=0.4, atomrefs=True),
    "cutoff10-atomrefs-shared": dict(cutoff=10.0, atomrefs=True, shared=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_model_equals_schnetpack(name: str) -> None:
    model = spk_model(**CASES[name])
    ours = from_schnetpack(model, energy_unit="eV")
    assert ours.settings.filter_activation is False and ours.settings.cutoff == CASES[name]["cutoff"]
    assert ours.units == {"energy": "eV", "length": "Angstrom"}
    compare(model, ours, CASES[name]["cutoff"], name)


def test_scale_property_of_energy_and_forces_folds_into_std() -> None:
    scaled = [
        trn.ScaleProperty("energy", scale=torch.tensor([-2.5])),
        trn.ScaleProperty("forces", scale=torch.tensor([-2.5])),
    ]
    model = spk_model(mean=1.0, atomrefs=True, postprocessors=scaled)
    ours = from_schnetpack(model, energy_unit="kcal/mol")
    assert float(ours.std) == pytest.approx(2.5)
    compare(model, ours, 5.0, "scaled")


def test_schnetpack_default_silu_head_converts_exactly() -> None:
    """SchNetPack 2's Atomwise default activation is SiLU: the converted head has head_activation='silu'."""
    model = spk_model(mean=-0.5, atomrefs=True, head_activation=torch.nn.functional.silu)
    ours = from_schnetpack(model, energy_unit="eV")
    assert ours.settings.head_activation == "silu"
    compare(model, ours, 5.0, "silu head")


def test_saved_file_round_trip_through_the_command(tmp_path) -> None:
    from pyg_schnet.experiments.convert_command import main

    model = spk_model(mean=-0.5, atomrefs=True)
    source = tmp_path / "best_model"
    torch.save(model, source)
    out = tmp_path / "model.pt"
    with pytest.raises(ValueError, match="pickled module \\(schnetpack.model.base.NeuralNetworkPotential\\)"):
        main([str(source), str(out), "--energy-unit", "eV"])
    summary = main([str(source), str(out), "--energy-unit", "eV", "--trust-pickle"])
    assert summary["source"] == "schnetpack"  # read from the file
    loaded = load_model(out)
    compare(model, loaded, 5.0, "saved")


def test_refusals_name_the_part() -> None:
    with pytest.raises(NotConvertibleError, match="Atomwise.outnet\\[0\\] has activation .*tanh; ours is the shifted"):
        from_schnetpack(spk_model(head_activation=torch.tanh), energy_unit="eV")
    with pytest.raises(NotConvertibleError, match="the Atomwise network has 3 layers; ours has one hidden layer"):
        from_schnetpack(spk_model(n_layers=3), energy_unit="eV")
    model = spk_model()
    model.output_modules[0].aggregation_mode = "avg"
    with pytest.raises(NotConvertibleError, match="aggregation_mode 'avg'"):
        from_schnetpack(model, energy_unit="eV")
    model = spk_model()
    model.representation.cutoff_fn = spk.nn.MollifierCutoff(5.0)
    with pytest.raises(NotConvertibleError, match="the cutoff function is a MollifierCutoff"):
        from_schnetpack(model, energy_unit="eV")
    model = spk_model()
    model.representation.radial_basis = spk.nn.BesselRBF(20, 5.0)
    with pytest.raises(NotConvertibleError, match="the radial basis is a BesselRBF"):
        from_schnetpack(model, energy_unit="eV")
    model = spk_model()
    model.representation.radial_basis.widths[4] *= 1.1
    with pytest.raises(NotConvertibleError, match="widths are not all equal"):
        from_schnetpack(model, energy_unit="eV")
    model = spk_model(postprocessors=[trn.ScaleProperty("energy", scale=torch.tensor([2.0]))])
    with pytest.raises(NotConvertibleError, match="scales the energy by 2.0 but the forces by 1.0"):
        from_schnetpack(model, energy_unit="eV")
    with pytest.raises(ValueError, match="energy_unit is required: a SchNetPack model does not record"):
        from_schnetpack(spk_model(), energy_unit=None)
    with pytest.raises(NotConvertibleError, match="not schnetpack.model.NeuralNetworkPotential"):
        from_schnetpack(torch.nn.Linear(2, 2), energy_unit="eV")
