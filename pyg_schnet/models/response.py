"""Forces as the declared derivative of the energy: the response of SchNet's output."""
from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import Tensor


def energy_and_forces(energy_fn: Callable[[Tensor], Tensor], pos: Tensor, training: bool) -> Tuple[Tensor, Tensor]:
    r"""Energies ``energy_fn(pos)`` and forces :math:`\mathbf{F} = -\partial E / \partial \mathbf{r}`.

    ``pos`` (Angstrom; any shape, e.g. ``[N, 3]`` sparse or ``[B, N, 3]`` dense) is differentiated
    as given when it already requires grad, else through a detached copy. With ``training`` the
    forces keep their graph (``create_graph=True``) so a force loss can be back-propagated to the
    weights (double backward); otherwise both results are detached. Positions the energy does not
    depend on (a lone atom, padding) get zero force.
    """
    if not pos.requires_grad:
        pos = pos.detach().requires_grad_(True)
    with torch.enable_grad():
        energy = energy_fn(pos)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=training, allow_unused=True)
    forces = -grad if grad is not None else torch.zeros_like(pos)
    if not training:
        return energy.detach(), forces.detach()
    return energy, forces
