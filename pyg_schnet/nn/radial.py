"""Gaussian radial basis expansion of interatomic distances."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def gaussians(diff: Tensor, gamma: float) -> Tensor:
    r""":math:`\exp(-\gamma\, \Delta^2)` of the differences ``diff`` = :math:`d - \mu_k` (Angstrom) for
    ``gamma`` in Angstrom^-2, with values below ``torch.finfo(dtype).tiny`` set to exactly zero (the
    mask of :class:`GaussianRBF`, applied to the exponent, so no subnormal is computed or saved)."""
    exponent = -gamma * diff * diff
    underflow = exponent < math.log(torch.finfo(exponent.dtype).tiny)
    return torch.exp(exponent.masked_fill(underflow, -math.inf))


class GaussianRBF(nn.Module):
    r"""Expands distances in Gaussians placed on a uniform grid (paper, section 4.1):

    .. math::
        e_k(d_{ij}) = \exp\left(-\gamma \, (d_{ij} - \mu_k)^2\right),
        \qquad \mu_k = \mu_0 + k\,\Delta\mu,\; k = 0, \dots, K - 1.

    The paper uses :math:`0 \le \mu_k \le 30` Angstrom every 0.1 Angstrom (:math:`K = 301`) and
    :math:`\gamma = 10\ \text{Angstrom}^{-2}`.

    Values smaller than the smallest normal number of their dtype (``torch.finfo(dtype).tiny``) are
    set to exactly zero. With 301 centres a few percent of the float32 values would otherwise be
    subnormal, which makes the CPU arithmetic on them (matrix multiplies, and the element-wise ops of
    the force backward passes) several times slower; the change to any result is below ``1e-38``.
    The mask is applied to the exponent (``exp(-inf) = 0``), so neither the output nor the values
    autograd saves for the backward pass hold subnormals.

    Args:
        start: first centre :math:`\mu_0` (Angstrom).
        stop: last centre (Angstrom).
        num_gaussians: number of centres :math:`K`.
        gamma: width parameter :math:`\gamma` (Angstrom^-2).
        linspace_dtype: the dtype in which ``torch.linspace`` computes the centres, held in float64
            (``torch.float32``: the centres of PyG's and SchNetPack's expansions, bit for bit).

    Shapes:
        - **input:** distances :math:`(E)` in Angstrom
        - **output:** expansion :math:`(E, K)`
    """

    centers: Tensor

    def __init__(
        self,
        start: float = 0.0,
        stop: float = 30.0,
        num_gaussians: int = 301,
        gamma: float = 10.0,
        linspace_dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if num_gaussians < 1:
            raise ValueError(f"num_gaussians must be positive, got {num_gaussians}")
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        self.start = float(start)
        self.stop = float(stop)
        self.num_gaussians = int(num_gaussians)
        self.gamma = float(gamma)
        # built in float64 and cast per call, so a float64 input sees centres exact to float64
        self.register_buffer(
            "centers",
            torch.linspace(start, stop, num_gaussians, dtype=linspace_dtype).to(torch.float64),
            persistent=False,
        )

    def reset_parameters(self) -> None:
        """No trainable parameters; present for the PyG layer interface."""

    def forward(self, distances: Tensor) -> Tensor:
        return gaussians(distances.unsqueeze(-1) - self.centers.to(distances.dtype), self.gamma)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(start={self.start}, stop={self.stop}, "
            f"num_gaussians={self.num_gaussians}, gamma={self.gamma})"
        )
