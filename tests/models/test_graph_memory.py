"""The memory guard of all-pairs graphs (cutoff=None): an estimate before the graph, a clear error above a limit."""

from __future__ import annotations

import pytest
import torch

from pyg_schnet import SchNet, backend, graph


def small_model() -> SchNet:
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=6, num_interactions=2, num_gaussians=10)


def test_estimate_counts_pairs_of_each_structure():
    batch = torch.tensor([0] * 10 + [1] * 20 + [3] * 2)  # 45 + 190 + 1 pairs (structure 2 is empty)
    pairs = 45 + 190 + 1
    assert graph.all_pairs_bytes(batch, 10, 6, 2, torch.float32, with_grad=True) == pairs * (4 * 10 + 10 * 6 * 2) * 4
    assert graph.all_pairs_bytes(batch, 10, 6, 2, torch.float64, with_grad=False) == pairs * (4 * 10 + 4 * 6) * 8


def test_limit_refuses_before_building_and_can_be_raised(monkeypatch):
    model = small_model()
    z, pos = torch.ones(30, dtype=torch.long), torch.rand(30, 3) * 10
    estimate = graph.all_pairs_bytes(torch.zeros(30, dtype=torch.long), 10, 6, 2, torch.float32, with_grad=True)
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", estimate - 1)
    with pytest.raises(MemoryError, match=r"all-pairs graph \(cutoff=None\) of this batch \(30 atoms.*cutoff=5.0"):
        model.energy_and_forces(z, pos)
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", estimate)
    energy, forces = model.energy_and_forces(z, pos)
    assert torch.isfinite(forces).all()
    # inference under no_grad needs less, so the same limit lets a no_grad call through
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", estimate - 1)
    with torch.no_grad():
        assert torch.isfinite(model(z, pos)).all()


def test_a_model_limit_overrides_the_process_limit(monkeypatch):
    model = small_model()
    z, pos = torch.ones(30, dtype=torch.long), torch.rand(30, 3) * 10
    estimate = graph.all_pairs_bytes(torch.zeros(30, dtype=torch.long), 10, 6, 2, torch.float32, with_grad=True)
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", estimate)
    model.representation.max_graph_bytes = estimate - 1
    with pytest.raises(MemoryError, match="representation.max_graph_bytes"):
        model.energy_and_forces(z, pos)
    other = small_model()  # the process limit still lets other models through
    assert torch.isfinite(other.energy_and_forces(z, pos)[1]).all()
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", estimate - 1)
    model.representation.max_graph_bytes = estimate
    assert torch.isfinite(model.energy_and_forces(z, pos)[1]).all()


@pytest.fixture
def environment(monkeypatch):
    """Sets an environment variable and has :mod:`pyg_schnet.backend` read it (it reads them once, on
    import); reads the restored environment afterwards."""

    def setenv(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        backend.read_environment()

    yield setenv
    monkeypatch.undo()
    backend.read_environment()


def test_environment_variable(environment):
    model = small_model()
    z, pos = torch.ones(30, dtype=torch.long), torch.rand(30, 3) * 10
    environment("PYG_SCHNET_MAX_GRAPH_BYTES", "1000")
    with pytest.raises(MemoryError, match="PYG_SCHNET_MAX_GRAPH_BYTES"):
        model(z, pos)
    environment("PYG_SCHNET_MAX_GRAPH_BYTES", "1e12")
    assert torch.isfinite(model(z, pos)).all()
    environment("PYG_SCHNET_MAX_GRAPH_BYTES", "lots")
    with pytest.raises(ValueError, match="PYG_SCHNET_MAX_GRAPH_BYTES must be a positive number of bytes, got 'lots'"):
        model(z, pos)


def test_environment_is_read_once_on_import(monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_MAX_GRAPH_BYTES", "1000")  # not read again: the limit stays
    assert backend.graph_memory_limit() == backend.MAX_GRAPH_BYTES != 1000


def test_default_limit_stops_the_paper_model_on_2000_atoms(environment):
    environment("PYG_SCHNET_MAX_GRAPH_BYTES", "")
    model = SchNet.from_paper()
    z, pos = torch.full((2000,), 6), torch.rand(2000, 3) * 30
    with pytest.raises(MemoryError, match=r"needs about \d+\.\d GiB, more than the limit of 4\.0 GiB"):
        model.energy_and_forces(z, pos)
    # a cutoff lifts the guard: the radius graph grows linearly
    assert SchNet.from_paper(cutoff=5.0).representation.cutoff == 5.0
