"""The shifted softplus of SchNet."""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

_LN2 = math.log(2.0)
# softplus returns x itself above this threshold; log(1 + e^-40) = 4e-18 is below float64 resolution
# there, so the switch is invisible even in float64 physics checks.
_THRESHOLD = 40.0


def shifted_softplus(x: Tensor) -> Tensor:
    r"""Shifted softplus :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5) = \ln(1 + e^x) - \ln 2`.

    Exactly 0 at ``x = 0``, infinitely differentiable, finite for any finite ``x`` (computed as a
    stable softplus, so ``x = +-500`` gives ``500 - ln 2`` and ``-ln 2``).
    """
    return F.softplus(x, beta=1.0, threshold=_THRESHOLD) - _LN2


class ShiftedSoftplus(nn.Module):
    r"""Module form of :func:`shifted_softplus`, :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5)`."""

    def forward(self, x: Tensor) -> Tensor:
        return shifted_softplus(x)
