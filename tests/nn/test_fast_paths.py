"""Every fast path equals the reference path (plain modules): energies, forces and the parameter
gradients of a force loss (double backward), in float64 (1e-10) and float32 (1e-5 relative)."""

from __future__ import annotations

from typing import Dict, Tuple

import pytest
import torch

from pyg_schnet import SchNet
from pyg_schnet.batching.dense import to_dense_atoms
from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.nn import CFConv, GaussianRBF, fused, reference_path

# small widths keep the tests fast; the Gaussian grids are the paper's (301 on 0-30 A) and the
# common one (50 on 0-10 A), where the window drops most and few centres
CONFIGS = {
    "paper_grid": dict(hidden_channels=16, num_filters=12, num_interactions=3, num_gaussians=301, rbf_stop=30.0),
    "common_grid_cutoff": dict(
        hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=50, rbf_stop=10.0, cutoff=4.0
    ),
    "wide_gaussians": dict(
        hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=40, rbf_stop=8.0, gamma=0.5
    ),
}


def _batch(molecules, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four molecules (3 to 12 atoms) in one batch, benzene stretched 2.5 times (distances to 12 A)."""
    zs, ps, bs = [], [], []
    for m, (z, pos) in enumerate(molecules):
        zs.append(z)
        ps.append(2.5 * pos if z.numel() == 12 else pos)
        bs.append(torch.full((z.numel(),), m))
    return torch.cat(zs), torch.cat(ps).to(dtype), torch.cat(bs)


def _force_training(
    model: SchNet, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor, dense: bool = False, **kwargs
) -> Dict[str, torch.Tensor]:
    """Energies, forces and the gradients of an energy + force loss with respect to every parameter
    (``dense``: through the padded path, ``batch`` then being the mask)."""
    model.train()
    model.zero_grad(set_to_none=True)
    if dense:
        energy, forces = model.energy_and_forces_dense(z, pos, batch, **kwargs)
    else:
        energy, forces = model.energy_and_forces(z, pos, batch, **kwargs)
    loss = (
        (energy**2).sum()
        + (forces**2).sum()
        + (forces * torch.linspace(-1, 1, forces.numel()).view_as(forces).to(pos.dtype)).sum()
    )
    loss.backward()
    out = {"energy": energy.detach(), "forces": forces.detach()}
    for name, p in model.named_parameters():
        out[name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    return out


def _compare(
    model: SchNet,
    dtype: torch.dtype,
    z: torch.Tensor,
    pos: torch.Tensor,
    batch: torch.Tensor,
    dense: bool = False,
    **kwargs,
) -> None:
    assert fused.fast_path_enabled()
    fast = _force_training(model, z, pos, batch, dense, **kwargs)
    with reference_path():
        assert not fused.fast_path_enabled()
        ref = _force_training(model, z, pos, batch, dense)
    assert fused.fast_path_enabled()
    for key in ref:
        if dtype == torch.float64:
            torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-10, msg=key)
        else:
            scale = ref[key].abs().max().clamp_min(1e-30)
            err = (fast[key] - ref[key]).abs().max() / scale
            assert err <= 1e-5, f"{key}: relative error {err:.2e}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_path_equals_reference_energy_forces_and_double_backward(molecules, name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = SchNet(**CONFIGS[name]).to(dtype)
    model.set_standardization(-3.0, 2.0)
    z, pos, batch = _batch(molecules, dtype)
    _compare(model, dtype, z, pos, batch)
    model.reset_parameters()
    with torch.no_grad():  # non-zero biases, so every bias term is exercised
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.3)
    _compare(model, dtype, z, pos, batch)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_host_layout_path_equals_reference(molecules, name: str, dtype: torch.dtype) -> None:
    """Sizes, all-pairs graph (also under a cutoff: pairs beyond it get zero filters) and the Gaussian
    window's distance range known on the host (HostLayout): the reference path's numbers."""
    torch.manual_seed(0)
    model = SchNet(**CONFIGS[name]).to(dtype)
    z, pos, batch = _batch(molecules, dtype)
    layout = HostLayout.from_host_positions(torch.bincount(batch).tolist(), pos)
    _compare(model, dtype, z, pos, batch, layout=layout)
    # nothing known about the distances: every centre (or those up to the cutoff)
    _compare(model, dtype, z, pos, batch, layout=HostLayout(layout.counts))


@pytest.mark.parametrize("bounds, window", [((0.0, float("inf")), (0, 301)), ((1.0, 2.0), (0, 52))])
def test_range_window_from_host_bounds(bounds, window) -> None:
    assert fused.range_window(0.0, 30.0, 301, 10.0, bounds) == window
    d = torch.tensor([1.0, 2.0], dtype=torch.float64)
    if bounds[1] < float("inf"):  # the same window as the one read from the distances
        assert fused.distance_window(0.0, 30.0, 301, 10.0, d) == window


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dense_fast_path_equals_dense_reference(molecules, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = SchNet(**CONFIGS["common_grid_cutoff"]).to(dtype)
    z, pos, batch = _batch(molecules, dtype)
    dense = to_dense_atoms(z, pos, batch)
    _compare(model, dtype, dense.z, dense.pos, dense.mask, dense=True)


def test_fast_path_single_molecule_eval_and_energy_only(molecules) -> None:
    torch.manual_seed(0)
    model = SchNet(**CONFIGS["paper_grid"]).double().eval()
    z, pos = molecules[1]
    e_fast, f_fast = model.energy_and_forces(z, pos)
    with reference_path():
        e_ref, f_ref = model.energy_and_forces(z, pos)
        g_ref = torch.autograd.grad(model(z, pos).sum(), list(model.parameters()), allow_unused=True)
    g_fast = torch.autograd.grad(model(z, pos).sum(), list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(e_fast, e_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(f_fast, f_ref, rtol=0, atol=1e-10)
    for a, b in zip(g_fast, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_window_keeps_every_gaussian_the_reference_keeps(dtype: torch.dtype) -> None:
    rbf = GaussianRBF(0.0, 30.0, 301, 10.0)
    d = torch.tensor([0.9, 1.1, 3.7, 4.05], dtype=dtype)
    lo, hi = fused.gaussian_window(rbf, d)
    full = rbf(d)
    assert 0 < hi - lo < 301
    window = fused.windowed_expansion(rbf, d, lo, hi)
    assert torch.equal(window, full[:, lo:hi])
    outside = torch.cat([full[:, :lo], full[:, hi:]], dim=1)
    assert float(outside.abs().max()) < fused.NEGLIGIBLE
    if dtype == torch.float32:
        assert torch.count_nonzero(outside) == 0


def test_pairs_beyond_the_last_gaussian_get_an_empty_window_and_the_bias_alone() -> None:
    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=51, rbf_stop=5.0).double()
    assert fused.gaussian_window(model.representation.rbf, torch.tensor([40.0], dtype=torch.float64)) == (51, 51)
    z, pos = torch.tensor([1, 6]), torch.tensor([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]], dtype=torch.float64)
    energy, forces = model.energy_and_forces(z, pos)
    with reference_path():
        energy_ref, forces_ref = model.energy_and_forces(z, pos)
    torch.testing.assert_close(energy, energy_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(forces, forces_ref, rtol=0, atol=1e-12)


def test_reference_path_restores_the_setting_after_an_error() -> None:
    with pytest.raises(RuntimeError):
        with reference_path():
            raise RuntimeError("boom")
    assert fused.fast_path_enabled()


def test_precomputed_filters_go_through_propagate_when_a_pyg_hook_is_registered(molecules) -> None:
    torch.manual_seed(0)
    model = SchNet(**CONFIGS["paper_grid"]).double().eval()
    z, pos = molecules[1]
    direct = model(z, pos)
    calls = []
    conv = model.representation.interactions[0].conv
    handle = conv.register_message_forward_hook(lambda module, inputs, output: calls.append(output.shape))
    try:
        hooked = model(z, pos)
    finally:
        handle.remove()
    assert calls == [(2 * 36, conv.channels)]  # 9 atoms: 36 pairs, both directions
    torch.testing.assert_close(hooked, direct, rtol=0, atol=1e-12)


HOOK_REGISTRARS = [
    name
    for name in dir(CFConv)
    if name.startswith("register_") and name.endswith("_hook") and name not in dir(torch.nn.Module)
]


def test_every_kind_of_pyg_hook_leaves_the_plain_path() -> None:
    """Each of PyG's message-passing hook registrars (propagate, message, aggregate,
    message_and_aggregate, edge_update; pre and post) makes the layer not plain, and the MD evaluator
    refuses the model; the module's own forward hooks do not (they wrap __call__)."""
    from pyg_schnet.models.md_evaluator import supports

    assert len(HOOK_REGISTRARS) >= 10, HOOK_REGISTRARS
    for name in HOOK_REGISTRARS:
        model = SchNet(**CONFIGS["paper_grid"])
        conv = model.representation.convs[1]
        assert conv.is_plain()
        handle = getattr(conv, name)(lambda *args: None)
        assert not conv.is_plain(), name
        assert "PyG message-passing hooks" in (supports(model) or ""), name
        handle.remove()
        assert conv.is_plain(), name
    conv.register_forward_hook(lambda *args: None)
    assert conv.is_plain()


def test_modified_filter_networks_run_their_own_modules(molecules) -> None:
    torch.manual_seed(0)
    model = SchNet(**CONFIGS["paper_grid"]).double().eval()
    z, pos = molecules[1]
    convs = [block.conv for block in model.representation.interactions]
    assert fused.fusable(model.representation.rbf, convs)
    convs[1].filter_network[3] = torch.nn.Tanh()  # a user's variant: the fused maths would be wrong
    assert not fused.fusable(model.representation.rbf, convs)
    energy = model(z, pos)
    with reference_path():
        torch.testing.assert_close(energy, model(z, pos), rtol=0, atol=1e-12)


def test_periodic_fast_path_equals_reference_energy_forces_stress_and_double_backward() -> None:
    torch.manual_seed(0)
    model = SchNet(
        hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=40, rbf_stop=4.0, cutoff=4.0
    ).double()
    gen = torch.Generator().manual_seed(3)
    cell = torch.diag(torch.tensor([3.2, 3.6, 4.1], dtype=torch.float64)) + 0.3 * torch.rand(
        3, 3, generator=gen, dtype=torch.float64
    )
    z = torch.tensor([1, 6, 8, 1, 7])
    pos = torch.rand(5, 3, generator=gen, dtype=torch.float64) @ cell
    cell, pbc = cell.unsqueeze(0), torch.tensor([[True, True, False]])

    def run() -> Dict[str, torch.Tensor]:
        model.eval()
        energy, forces, stress = model.energy_forces_stress(z, pos, cell=cell, pbc=pbc)
        model.train()
        model.zero_grad(set_to_none=True)
        e, f = model.energy_and_forces(z, pos, cell=cell, pbc=pbc)
        ((e**2).sum() + (f**2).sum()).backward()
        out = {"energy": energy, "forces": forces, "stress": stress}
        out.update({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
        return out

    fast = run()
    with reference_path():
        ref = run()
    assert fast.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-10, msg=key)
