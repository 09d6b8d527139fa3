"""Audit cases: bad inputs to the model (issue 8, defects 2, 7 and 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch
from torch import Tensor

from pyg_schnet import SchNet

from .registry import case


def _model() -> SchNet:
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10).eval()


def _water() -> Tuple[Tensor, Tensor]:
    return torch.tensor([8, 1, 1]), torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])


def _two_waters() -> Tuple[Tensor, Tensor]:
    z, pos = _water()
    return torch.cat([z, z]), torch.cat([pos, pos + 5.0])


@case(
    "model",
    "energy_and_forces with positions x 1e19 (finite energy, NaN forces before)",
    ValueError,
    r"atom 1 \(molecule 0\) has position .* beyond \+-10000 Angstrom",
)
def _(tmp: Path):
    z, pos = _water()
    _model().energy_and_forces(z, pos * 1e19)


@case(
    "model",
    "batch vector with a gap: [0]*3 + [2]*3 (3 energies for 2 molecules before)",
    ValueError,
    r"without gaps: atom 3 has molecule 2 after molecule 0, so molecule 1 would have no atoms",
)
def _(tmp: Path):
    z, pos = _two_waters()
    _model()(z, pos, torch.tensor([0] * 3 + [2] * 3))


@case(
    "model",
    "batch vector [0]*3 + [10**8]*3 (allocated 10^8 energies before)",
    ValueError,
    r"atom 3 has molecule 100000000 after molecule 0",
)
def _(tmp: Path):
    z, pos = _two_waters()
    _model()(z, pos, torch.tensor([0] * 3 + [10**8] * 3))


@case("model", "batch vector starting at molecule 1", ValueError, r"atom 0 belongs to molecule 1")
def _(tmp: Path):
    z, pos = _water()
    _model()(z, pos, torch.ones(3, dtype=torch.long))


@case("model", "float64 positions into a float32 model", None, r"float32 energy .* float64 forces")
def _(tmp: Path) -> str:
    model = _model()
    z, pos = _water()
    e64, f64 = model.energy_and_forces(z, pos.double())
    e32, f32 = model.energy_and_forces(z, pos)
    assert torch.equal(e64, e32) and torch.allclose(f64.float(), f32)
    return f"converted to the model's dtype: {str(e64.dtype)[6:]} energy equal to the float32 path, {str(f64.dtype)[6:]} forces on the caller's positions"


@case("model", "uint8 atomic numbers", None, r"same energy as int64")
def _(tmp: Path) -> str:
    model = _model()
    z, pos = _water()
    assert torch.equal(model(z.to(torch.uint8), pos), model(z, pos))
    return "accepted (converted to int64): same energy as int64 z"


@case("model", "bool batch vector", ValueError, r"batch must be a 1-D integer tensor .*torch\.bool")
def _(tmp: Path):
    z, pos = _water()
    _model()(z, pos, torch.zeros(3, dtype=torch.bool))


@case("model", "integer positions", ValueError, r"pos must be a floating-point tensor .*torch\.int64")
def _(tmp: Path):
    z, pos = _water()
    _model()(z, pos.long())


@case("model", "numpy arrays as z and pos", TypeError, r"z must be a torch\.Tensor, got numpy\.ndarray")
def _(tmp: Path):
    z, pos = _water()
    _model()(z.numpy(), pos.numpy())


@case("model", "SchNet(hidden_channels=0)", ValueError, r"SchNet: hidden_channels must be a positive integer, got 0")
def _(tmp: Path):
    SchNet(hidden_channels=0)


@case("model", "SchNet(max_z=0)", ValueError, r"SchNet: max_z .* must be an integer >= 2, got 0")
def _(tmp: Path):
    SchNet(max_z=0)


@case("model", "SchNet(num_gaussians=8.5)", ValueError, r"num_gaussians must be a positive integer, got 8\.5")
def _(tmp: Path):
    SchNet(num_gaussians=8.5)


@case(
    "model",
    "set_standardization with a NaN mean",
    ValueError,
    r"standardization: mean must be a finite number, got nan",
)
def _(tmp: Path):
    _model().set_standardization(float("nan"), 1.0)
