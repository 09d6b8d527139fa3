"""The shifted softplus of SchNet."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

#: :math:`\ln 2`, the shift of the shifted softplus.
LN2 = math.log(2.0)
#: softplus returns x itself above this threshold; log(1 + e^-40) = 4e-18 is below float64 resolution
#: there, so the switch is invisible even in float64 physics checks.
SOFTPLUS_THRESHOLD = 40.0


def softplus(x: Tensor) -> Tensor:
    r"""Softplus :math:`\ln(1 + e^x)` with :data:`SOFTPLUS_THRESHOLD`: :func:`shifted_softplus` plus
    :math:`\ln 2`. Its derivative, and that of the shifted softplus, is :func:`torch.sigmoid`."""
    return F.softplus(x, beta=1.0, threshold=SOFTPLUS_THRESHOLD)


def shifted_softplus(x: Tensor) -> Tensor:
    r"""Shifted softplus :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5) = \ln(1 + e^x) - \ln 2`.

    Exactly 0 at ``x = 0``, infinitely differentiable, finite for any finite ``x`` (computed as a
    stable softplus, so ``x = +-500`` gives ``500 - ln 2`` and ``-ln 2``).
    """
    return softplus(x) - LN2


#: The activations an output head may have (``SchNetConfig.head_activation``): the paper's shifted softplus,
#: or SiLU :math:`x\,\mathrm{sigmoid}(x)`, the default of SchNetPack 2's ``Atomwise`` heads.
HEAD_ACTIVATIONS = ("shifted_softplus", "silu")


def head_activation(name: str) -> nn.Module:
    """The activation module named ``name`` (one of :data:`HEAD_ACTIVATIONS`)."""
    if name == "shifted_softplus":
        return ShiftedSoftplus()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown head activation {name!r}; the activations are {', '.join(HEAD_ACTIVATIONS)}")


class ShiftedSoftplus(nn.Module):
    r"""Module form of :func:`shifted_softplus`, :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5)`."""

    def forward(self, x: Tensor) -> Tensor:
        return shifted_softplus(x)
