"""torch-scatter / torch-cluster against the plain-PyTorch fallback: identical results."""

import importlib

import pytest
import torch

from pyg_schnet import SchNet, backend
from pyg_schnet.graph import build_graph, full_graph


def _edge_set(edge_index):
    return sorted(map(tuple, edge_index.t().tolist()))


def _batch():
    gen = torch.Generator().manual_seed(0)
    sizes = [1, 5, 12, 3]
    pos = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64) * 2
    batch = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    z = torch.randint(1, 10, (sum(sizes),), generator=gen)
    return z, pos, batch


def test_fallback_radius_graph_matches_full_graph_filtered(monkeypatch):
    monkeypatch.setattr(backend, "USE_TORCH_CLUSTER", False)
    _, pos, batch = _batch()
    got = build_graph(pos, batch, cutoff=2.5)
    full = full_graph(batch)
    d = (pos[full[0]] - pos[full[1]]).norm(dim=-1)
    assert _edge_set(got) == _edge_set(full[:, d <= 2.5])
    assert got.size(1) < full.size(1)  # the cutoff removes pairs here


def test_full_graph_is_every_ordered_pair_within_molecules():
    _, _, batch = _batch()
    ei = full_graph(batch)
    assert ei.size(1) == sum(n * (n - 1) for n in (1, 5, 12, 3))
    assert bool((batch[ei[0]] == batch[ei[1]]).all()) and bool((ei[0] != ei[1]).all())
    assert len(set(_edge_set(ei))) == ei.size(1)


@pytest.mark.skipif(not backend.USE_TORCH_CLUSTER, reason="torch-cluster is not installed")
def test_torch_cluster_equals_fallback_and_full_graph(monkeypatch):
    import torch_cluster

    _, pos, batch = _batch()
    compiled = build_graph(pos, batch, cutoff=2.5)
    monkeypatch.setattr(backend, "USE_TORCH_CLUSTER", False)
    assert _edge_set(compiled) == _edge_set(build_graph(pos, batch, cutoff=2.5))
    # an infinite radius in torch-cluster is the paper's all-pairs graph
    huge = torch_cluster.radius_graph(pos, r=1e6, batch=batch, loop=False, max_num_neighbors=100)
    assert _edge_set(huge) == _edge_set(full_graph(batch))


@pytest.mark.skipif(not backend.USE_TORCH_SCATTER, reason="torch-scatter is not installed")
def test_torch_scatter_equals_fallback(monkeypatch):
    z, pos, batch = _batch()
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=40, cutoff=4.0).double()
    e_c, f_c = model.energy_and_forces(z, pos, batch)
    monkeypatch.setattr(backend, "USE_TORCH_SCATTER", False)
    monkeypatch.setattr(backend, "USE_TORCH_CLUSTER", False)
    e_f, f_f = model.energy_and_forces(z, pos, batch)
    torch.testing.assert_close(e_c, e_f, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f_c, f_f, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(
    importlib.util.find_spec("torch_scatter") is None or importlib.util.find_spec("torch_cluster") is None,
    reason="torch-scatter / torch-cluster are not installed",
)
def test_compiled_kernels_are_used_when_installed(monkeypatch):
    import torch_cluster
    import torch_scatter

    assert backend.USE_TORCH_SCATTER and backend.USE_TORCH_CLUSTER
    calls = {"scatter": 0, "cluster": 0}
    real_scatter, real_radius = torch_scatter.scatter_add, torch_cluster.radius_graph

    def spy_scatter(*args, **kwargs):
        calls["scatter"] += 1
        return real_scatter(*args, **kwargs)

    def spy_radius(*args, **kwargs):
        calls["cluster"] += 1
        return real_radius(*args, **kwargs)

    monkeypatch.setattr(torch_scatter, "scatter_add", spy_scatter)
    monkeypatch.setattr(torch_cluster, "radius_graph", spy_radius)
    z, pos, batch = _batch()
    SchNet(hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=10, cutoff=3.0)(z, pos.float(), batch)
    assert calls["cluster"] == 1
    assert calls["scatter"] == 3  # one per interaction block, one for the per-molecule sum


@pytest.mark.parametrize("cutoff", [None, 2.5])
def test_pairs_mirrored_are_the_graph(cutoff):
    from pyg_schnet.graph import build_pairs, mirror

    _, pos, batch = _batch()
    pairs = build_pairs(pos, batch, cutoff)
    assert bool((pairs[0] < pairs[1]).all())
    assert _edge_set(mirror(pairs)) == _edge_set(build_graph(pos, batch, cutoff))
