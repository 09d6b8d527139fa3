"""Smooth cosine cutoff for a finite interaction radius."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def cosine_cutoff(distances: Tensor, cutoff: float) -> Tensor:
    r""":math:`f_c(d)` of :class:`CosineCutoff` for distances and radius in Angstrom."""
    value = 0.5 * (torch.cos(distances * (math.pi / cutoff)) + 1.0)
    return torch.where(distances < cutoff, value, torch.zeros_like(value))


def cosine_cutoff_derivative(distances: Tensor, cutoff: float) -> Tensor:
    r""":math:`f_c'(d) = -\tfrac{\pi}{2 r_c} \sin(\pi d / r_c)` inside the radius, 0 outside
    (Angstrom^-1)."""
    value = (-0.5 * math.pi / cutoff) * torch.sin(distances * (math.pi / cutoff))
    return torch.where(distances < cutoff, value, torch.zeros_like(value))


class CosineCutoff(nn.Module):
    r"""Cosine cutoff (Behler) that takes a filter smoothly to zero at the radius :math:`r_c`:

    .. math::
        f_c(d) = \begin{cases} \tfrac12 \left(\cos(\pi d / r_c) + 1\right) & d < r_c \\
                               0 & d \ge r_c \end{cases}

    :math:`f_c` and its first derivative vanish at :math:`r_c`, so energies stay continuous and
    forces stay continuous when a pair crosses the radius. Not part of the paper's preset (which has
    no cutoff); an option for larger systems.

    Args:
        cutoff: radius :math:`r_c` in Angstrom.
    """

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        if not cutoff > 0:
            raise ValueError(f"cutoff must be a positive distance in Angstrom, got {cutoff}")
        self.cutoff = float(cutoff)

    def forward(self, distances: Tensor) -> Tensor:
        return cosine_cutoff(distances, self.cutoff)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cutoff={self.cutoff})"
