"""The memory guard of all-pairs graphs (cutoff=None): an estimate before the graph, a clear error above a limit."""
from __future__ import annotations

import pytest
import torch

from pyg_schnet import SchNet, graph


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
    monkeypatch.setattr(graph, "MAX_GRAPH_BYTES", estimate - 1)
    with pytest.raises(MemoryError, match=r"all-pairs graph \(cutoff=None\) of this batch \(30 atoms.*cutoff=5.0"):
        model.energy_and_forces(z, pos)
    monkeypatch.setattr(graph, "MAX_GRAPH_BYTES", estimate)
    energy, forces = model.energy_and_forces(z, pos)
    assert torch.isfinite(forces).all()
    # inference under no_grad needs less, so the same limit lets a no_grad call through
    monkeypatch.setattr(graph, "MAX_GRAPH_BYTES", estimate - 1)
    with torch.no_grad():
        assert torch.isfinite(model(z, pos)).all()


def test_environment_variable(monkeypatch):
    model = small_model()
    z, pos = torch.ones(30, dtype=torch.long), torch.rand(30, 3) * 10
    monkeypatch.setenv("PYG_SCHNET_MAX_GRAPH_BYTES", "1000")
    with pytest.raises(MemoryError, match="PYG_SCHNET_MAX_GRAPH_BYTES"):
        model(z, pos)
    monkeypatch.setenv("PYG_SCHNET_MAX_GRAPH_BYTES", "1e12")
    assert torch.isfinite(model(z, pos)).all()
    monkeypatch.setenv("PYG_SCHNET_MAX_GRAPH_BYTES", "lots")
    with pytest.raises(ValueError, match="PYG_SCHNET_MAX_GRAPH_BYTES must be a positive number of bytes, got 'lots'"):
        model(z, pos)


def test_default_limit_stops_the_paper_model_on_2000_atoms(monkeypatch):
    monkeypatch.delenv("PYG_SCHNET_MAX_GRAPH_BYTES", raising=False)
    model = SchNet.from_paper()
    z, pos = torch.full((2000,), 6), torch.rand(2000, 3) * 30
    with pytest.raises(MemoryError, match=r"needs about \d+\.\d GiB, more than the limit of 4\.0 GiB"):
        model.energy_and_forces(z, pos)
    # a cutoff lifts the guard: the radius graph grows linearly
    assert SchNet.from_paper(cutoff=5.0).representation.cutoff == 5.0
