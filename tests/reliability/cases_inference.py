"""Audit cases: bad inputs to the MD call without autograd (pyg_schnet.models.md_evaluator.MDEvaluator)."""

from __future__ import annotations

from pathlib import Path

import torch

from pyg_schnet import SchNet
from pyg_schnet.models.md_evaluator import MDEvaluator

from .registry import case


def _evaluator(mode: str = "exact", cutoff=None) -> MDEvaluator:
    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, cutoff=cutoff).eval()
    return MDEvaluator(model, torch.tensor([8, 1, 1]), mode=mode, spacing=0.05)


_WATER = torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])


@case(
    "simulation",
    "MDEvaluator (tabulated) with a NaN coordinate (no per-call input check)",
    ValueError,
    r"atom 1 \(molecule 0\) has a non-finite position",
)
def _(tmp: Path):
    pos = _WATER.clone()
    pos[1, 2] = float("nan")
    _evaluator("tabulated")(pos)


@case(
    "simulation",
    "MDEvaluator with two atoms at the same position",
    ValueError,
    r"atoms 0 and 2 of molecule 0 are at the same position",
)
def _(tmp: Path):
    pos = _WATER.clone()
    pos[2] = pos[0]
    _evaluator()(pos)


@case(
    "simulation",
    "MDEvaluator with positions of another molecule (4 atoms for 3)",
    ValueError,
    r"pos must be a tensor \[3, 3\] \(Angstrom\), got \(4, 3\)",
)
def _(tmp: Path):
    _evaluator()(torch.zeros(4, 3))


@case(
    "simulation",
    "MDEvaluator asked for a periodic structure",
    NotImplementedError,
    r"molecules only; for a periodic structure use model.energy_and_forces",
)
def _(tmp: Path):
    _evaluator(cutoff=3.0)(_WATER, torch.eye(3) * 10, torch.tensor([True, True, False]))
