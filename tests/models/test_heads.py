"""Output heads in float64: extensive sums, intensive means, latent-charge dipoles, several heads on one
representation, the dense path, the refusals, and model files with heads (and without: legacy files)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.models.config import SchNetConfig
from pyg_schnet.models.md_evaluator import MDEvaluator, supports
from pyg_schnet.nn import AtomwiseIntensive, DipoleMoment

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=30, rbf_stop=5.0, gamma=4.0)


def tiny(seed: int = 0, **kw) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(**{**TINY, **kw}).double().eval()
    for name, head in [("energy", model.head), *model.heads.items()]:  # non-trivial standardisation
        if isinstance(head, DipoleMoment):
            model.set_standardization(0.0, 0.7, head=name)
        else:
            model.set_standardization(-0.4, 1.3, head=name)
    return model


def random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def two_copies(z: torch.Tensor, pos: torch.Tensor, distance: float):
    """One structure holding ``(z, pos)`` twice, the copy shifted by ``distance`` Angstrom along x."""
    shift = torch.tensor([distance, 0.0, 0.0], dtype=pos.dtype)
    return torch.cat([z, z]), torch.cat([pos, pos + shift])


# ------------------------------------------------------------------------------------ size behaviour
def test_intensive_head_same_for_two_far_copies_extensive_twice(molecules):
    z, pos = molecules[1]  # ethanol, about 4 Angstrom across
    cutoff = 3.0
    zz, pp = two_copies(z, pos, 20.0)  # the copies are farther apart than the cutoff
    assert float(torch.cdist(pos, pos + torch.tensor([20.0, 0, 0], dtype=pos.dtype)).min()) > cutoff
    intensive = tiny(output="intensive", cutoff=cutoff)
    extensive = tiny(output="extensive", cutoff=cutoff)
    one, two = intensive(z, pos), intensive(zz, pp)
    torch.testing.assert_close(two, one, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(extensive(zz, pp), 2 * extensive(z, pos), rtol=1e-12, atol=1e-12)
    # and the intensive value is the mean of the same atom contributions the extensive head sums
    x = intensive.representation(z, pos, torch.zeros_like(z))
    torch.testing.assert_close(one, intensive.head.atom_energies(x, z).mean().reshape(1), rtol=1e-12, atol=0)
    # a molecule's intensive value does not depend on its size the way a sum does: a different copy count
    zzz, ppp = two_copies(zz, pp, 60.0)
    torch.testing.assert_close(intensive(zzz, ppp), one, rtol=1e-12, atol=1e-12)


def test_dipole_moment_of_two_far_copies():
    """Two neutral copies far apart: the dipoles add (|mu| doubles: the copies are parallel)."""
    from ase.build import molecule

    atoms = molecule("H2O")
    z, pos = torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=torch.float64)
    model = tiny(output="dipole_moment", cutoff=3.0)
    zz, pp = two_copies(z, pos, 25.0)
    torch.testing.assert_close(model(zz, pp), 2 * model(z, pos), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------- dipoles
def test_dipole_rotates_translates_and_charges_sum_to_total(molecules):
    model = tiny(output="dipole_moment", extra_heads=(("mu_vec", "dipole"),))
    gen = torch.Generator().manual_seed(5)
    z, pos = molecules[1]
    mu = model.dipole(z, pos)
    assert mu.shape == (1, 3)
    assert float(mu.detach().norm()) > 1e-3  # a dipole that can rotate
    torch.testing.assert_close(model(z, pos), mu.norm(dim=-1), rtol=1e-12, atol=0)
    for _ in range(3):
        rot = random_rotation(gen)
        shift = 10 * torch.randn(3, generator=gen, dtype=torch.float64)
        perm = torch.randperm(z.numel(), generator=gen)
        moved = pos[perm] @ rot.T + shift
        torch.testing.assert_close(model.dipole(z[perm], moved), mu @ rot.T, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(model(z[perm], moved), model(z, pos), rtol=1e-10, atol=1e-12)
    # the vector head and the primary head are different networks, both equivariant
    vec = model.dipole(z, pos, head="mu_vec")
    rot = random_rotation(gen)
    torch.testing.assert_close(model.dipole(z, pos @ rot.T, head="mu_vec"), vec @ rot.T, rtol=1e-10, atol=1e-12)


def test_charges_sum_to_total_charge_and_dipole_is_their_moment(molecules):
    model = tiny(output="dipole_moment")
    (z1, p1), (z2, p2) = molecules[0], molecules[1]
    z, pos = torch.cat([z1, z2]), torch.cat([p1, p2])
    batch = torch.cat([torch.zeros_like(z1), torch.ones_like(z2)])
    charge = torch.tensor([0.0, 1.0], dtype=torch.float64)
    q = model.charges(z, pos, batch, charge=charge)
    totals = torch.zeros(2, dtype=torch.float64).index_add_(0, batch, q)
    torch.testing.assert_close(totals, charge, rtol=0, atol=1e-12)
    # independent reference: the head's raw outputs, shifted by hand, times the positions about the centroid
    x = model.representation(z, pos, batch)
    raw = model.head.std * model.head.net(x).squeeze(-1)
    expected = []
    for g in range(2):
        sel = batch == g
        qg = raw[sel] - (raw[sel].sum() - charge[g]) / sel.sum()
        torch.testing.assert_close(q[sel], qg, rtol=1e-12, atol=1e-14)
        expected.append((qg[:, None] * (pos[sel] - pos[sel].mean(dim=0))).sum(dim=0))
    mu = model.dipole(z, pos, batch, charge=charge)
    torch.testing.assert_close(mu, torch.stack(expected), rtol=1e-12, atol=1e-14)
    # a charged structure's dipole is taken about its centre of geometry: translation invariant too
    shift = torch.tensor([3.0, -2.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(model.dipole(z, pos + shift, batch, charge=charge), mu, rtol=1e-10, atol=1e-12)
    # forward takes the same charge
    torch.testing.assert_close(model(z, pos, batch, charge=charge), mu.norm(dim=-1), rtol=1e-12, atol=0)


def test_dipole_gradient_is_finite_at_zero_dipole():
    """A single atom has mu = 0 exactly (its charge sits at the centre): |mu| and its gradient are finite."""
    model = tiny(output="dipole_moment").train()
    z = torch.tensor([8])
    pos = torch.zeros(1, 3, dtype=torch.float64)
    value = model(z, pos)
    assert float(value.detach()) == 0.0
    value.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------------- several heads
HEADS = (("dipole", "dipole"), ("gap", "intensive"), ("mu", "dipole_moment"), ("alpha", "extensive"))


def test_predict_equals_separate_evaluation(molecules):
    model = tiny(extra_heads=HEADS, cutoff=4.0)
    (z1, p1), (z2, p2) = molecules[0], molecules[2]
    z, pos = torch.cat([z1, z2]), torch.cat([p1, p2])
    batch = torch.cat([torch.zeros_like(z1), torch.ones_like(z2)])
    out = model.predict(z, pos, batch)
    assert list(out) == ["energy", "dipole", "gap", "mu", "alpha"]
    assert out["dipole"].shape == (2, 3) and out["gap"].shape == (2,) and out["energy"].shape == (2,)
    torch.testing.assert_close(out["energy"], model(z, pos, batch), rtol=1e-12, atol=0)
    torch.testing.assert_close(out["dipole"], model.dipole(z, pos, batch, head="dipole"), rtol=1e-12, atol=0)
    torch.testing.assert_close(out["mu"], model.dipole(z, pos, batch, head="mu").norm(dim=-1), rtol=1e-12, atol=0)
    # each extra head equals a one-head model with that head as its primary output (same weights)
    for name, kind in HEADS:
        output = {"dipole": "dipole_moment"}.get(kind, kind)
        single = tiny(output=output, cutoff=4.0)
        single.representation.load_state_dict(model.representation.state_dict())
        single.head.load_state_dict(model.heads[name].state_dict())
        for g, (zg, pg) in enumerate([(z1, p1), (z2, p2)]):
            if kind == "dipole":
                torch.testing.assert_close(single.dipole(zg, pg)[0], out[name][g], rtol=1e-10, atol=1e-13)
            else:
                torch.testing.assert_close(single(zg, pg)[0], out[name][g], rtol=1e-10, atol=1e-13)
    # forces of the primary output in the same pass
    with_forces = model.predict(z, pos, batch, forces=True)
    energy, forces = model.energy_and_forces(z, pos, batch)
    torch.testing.assert_close(with_forces["forces"], forces, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(with_forces["dipole"], out["dipole"], rtol=1e-12, atol=0)
    assert not with_forces["dipole"].requires_grad  # eval mode: detached


def test_dense_path_computes_intensive_and_dipole_heads(molecules):
    from torch_geometric.data import Batch, Data

    from pyg_schnet.batching import to_dense

    batch = Batch.from_data_list([Data(z=z, pos=p) for z, p in molecules[:3]])
    dense = to_dense(batch)
    for output in ("intensive", "dipole_moment", "extensive"):
        model = tiny(output=output)
        sparse = model(batch.z, batch.pos, batch.batch)
        torch.testing.assert_close(model.forward_dense(dense.z, dense.pos, dense.mask), sparse, rtol=1e-10, atol=1e-12)
        e, f = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
        _, f_sparse = model.energy_and_forces(batch.z, batch.pos, batch.batch)
        torch.testing.assert_close(f[dense.mask], f_sparse, rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------------------------- refusals
def test_atomref_on_an_intensive_head_is_refused():
    model = tiny(output="intensive")
    with pytest.raises(ValueError, match="intensive head .* takes no atom references"):
        model.set_standardization(0.0, 1.0, torch.zeros(100))
    with pytest.raises(ValueError, match="dipole head takes no atom references"):
        tiny(output="dipole_moment").set_standardization(0.0, 1.0, torch.zeros(100))
    with pytest.raises(ValueError, match="dipole head has no mean"):
        tiny(output="dipole_moment").set_standardization(0.5, 1.0)
    extra = tiny(extra_heads=(("gap", "intensive"),))
    with pytest.raises(ValueError, match="head 'gap' \\(intensive\\)"):
        extra.set_standardization(0.0, 1.0, torch.zeros(100), head="gap")
    with pytest.raises(KeyError, match="no head 'homo'"):
        extra.set_standardization(0.0, 1.0, head="homo")


def test_dipole_of_a_model_without_one_is_refused(molecules):
    z, pos = molecules[0]
    with pytest.raises(ValueError, match="no dipole head"):
        tiny().dipole(z, pos)
    with pytest.raises(ValueError, match="head 'gap' is intensive, not a dipole head"):
        tiny(extra_heads=(("gap", "intensive"),)).dipole(z, pos, head="gap")


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(output="sum"), ValueError, "output must be one of extensive, intensive, dipole_moment"),
        (dict(extra_heads=(("homo", "mean"),)), ValueError, "kind 'mean'; the kinds are"),
        (dict(extra_heads=(("d", "dipole"), ("d", "intensive"))), ValueError, "duplicate extra head name 'd'"),
        (dict(extra_heads=(("energy", "intensive"),)), ValueError, "'energy' is reserved"),
        (dict(extra_heads=(("forces", "dipole"),)), ValueError, "'forces' is reserved"),
        (dict(extra_heads=(("a b", "dipole"),)), ValueError, "must be an identifier"),
        (dict(extra_heads="dipole"), TypeError, "sequence of \\(name, kind\\) pairs"),
        (dict(extra_heads=(("dipole",),)), TypeError, "must be a \\(name, kind\\) pair"),
    ],
)
def test_bad_head_settings_are_refused(options, error, match):
    with pytest.raises(error, match=match):
        SchNet(**TINY, **options)


def test_fast_paths_refuse_other_heads(molecules):
    z, pos = molecules[0]
    for model, reason in (
        (tiny(output="intensive"), "primary output is 'intensive'"),
        (tiny(output="dipole_moment"), "primary output is 'dipole_moment'"),
        (tiny(extra_heads=(("dipole", "dipole"),)), "extra heads \\('dipole' \\(dipole\\)\\)"),
    ):
        assert supports(model) is not None
        with pytest.raises(ValueError, match=reason):
            MDEvaluator(model, z)
    assert supports(tiny()) is None
    with pytest.raises(ValueError, match="export_weights describes the paper's energy head"):
        tiny(output="intensive").export_weights()
    with pytest.raises(ValueError, match="dipole head, but structure 0 is periodic"):
        tiny(output="dipole_moment", cutoff=3.0)(
            z, pos + 1.0, cell=8.0 * torch.eye(3, dtype=torch.float64)[None], pbc=torch.tensor([[True, True, True]])
        )


# ---------------------------------------------------------------------------------- files, config
def test_config_round_trips_through_json_and_model_files(tmp_path, molecules):
    config = SchNetConfig(**TINY, output="intensive", extra_heads=[["dipole", "dipole"], ("U0", "extensive")])
    assert config.extra_heads == (("dipole", "dipole"), ("U0", "extensive"))  # lists read back as tuples
    assert SchNetConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    model = SchNet(config)  # float32, as files are read
    count = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert count == config.parameter_count()
    model.set_standardization(0.2, 0.9)
    model.set_standardization(0.0, 0.3, head="dipole")
    model.units = {"energy": "eV", "length": "Angstrom"}
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.settings == config and loaded.config["extra_heads"] == (("dipole", "dipole"), ("U0", "extensive"))
    assert isinstance(loaded.head, AtomwiseIntensive) and isinstance(loaded.heads["dipole"], DipoleMoment)
    z, pos = molecules[1][0], molecules[1][1].float()
    for key, value in model.eval().predict(z, pos).items():
        torch.testing.assert_close(loaded.predict(z, pos)[key], value, rtol=0, atol=0)


def test_legacy_model_file_reads_as_the_paper_head():
    model = load_model(FIXTURES / "model_v0.2.0.pt")
    assert model.settings.output == "extensive" and model.settings.extra_heads == ()
    assert model.head_kinds == {"energy": "extensive"} and len(model.heads) == 0
    assert supports(model) is None
    assert math.isfinite(float(model.mean))
