"""Forces as the declared derivative of the energy: the response of SchNet's output."""

from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import Tensor


def check_autograd_available(what: str) -> None:
    """Raise a :class:`RuntimeError` that says why when ``what`` (forces, stress) is asked for under
    :func:`torch.inference_mode`, which switches autograd off for good (``torch.no_grad`` does not:
    gradients with respect to the positions are switched back on inside)."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            f"{what} under torch.inference_mode(): forces (and stress) are -dE/dpos computed by autograd, "
            "which inference_mode switches off. Call it outside inference_mode (torch.no_grad() is fine); "
            "for energies alone call model(z, pos). SchNetCalculator handles inference_mode itself."
        )


def energy_and_forces(energy_fn: Callable[[Tensor], Tensor], pos: Tensor, training: bool) -> Tuple[Tensor, Tensor]:
    r"""Energies ``energy_fn(pos)`` and forces :math:`\mathbf{F} = -\partial E / \partial \mathbf{r}`.

    ``pos`` (Angstrom; any shape, e.g. ``[N, 3]`` sparse or ``[B, N, 3]`` dense) is differentiated
    as given when it already requires grad, else through a detached copy. With ``training`` the
    forces keep their graph (``create_graph=True``) so a force loss can be back-propagated to the
    weights (double backward); otherwise both results are detached. Positions the energy does not
    depend on (a lone atom, padding) get zero force.
    """
    check_autograd_available("energy_and_forces")
    if not pos.requires_grad:
        pos = pos.detach().requires_grad_(True)
    with torch.enable_grad():
        energy = energy_fn(pos)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=training, allow_unused=True)
    forces = -grad if grad is not None else torch.zeros_like(pos)
    if not training:
        return energy.detach(), forces.detach()
    return energy, forces


def energy_forces_stress(
    energy_fn: Callable[[Tensor, Tensor], Tensor],
    pos: Tensor,
    cell: Tensor,
    pbc: Tensor,
    batch: Tensor,
    training: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Energies ``energy_fn(pos, cell)`` ``[G]``, forces ``[N, 3]`` and stress ``[G, 3, 3]``.

    A symmetric strain :math:`\varepsilon_g` (zero, but differentiated) deforms each structure ``g``:
    positions :math:`\mathbf{r}_i \to \mathbf{r}_i (1 + \varepsilon_{g(i)})` and lattice vectors (rows
    of ``cell``) :math:`C_g \to C_g (1 + \varepsilon_g)`. Then

    .. math::
        \mathbf{F}_i = -\frac{\partial E}{\partial \mathbf{r}_i}, \qquad
        \sigma_g = \frac{1}{V_g} \frac{\partial E_g}{\partial \varepsilon_g}, \quad V_g = |\det C_g|

    (energy unit per Angstrom^3; ASE's convention, whose ``calculate_numerical_stress`` applies the
    same deformation). ``pbc`` ``[G, 3]``: every structure must have a periodic axis and a non-zero
    volume, else :class:`ValueError` names it. ``training`` keeps the graph (``create_graph=True``)
    as in :func:`energy_and_forces`; otherwise the results are detached.
    """
    check_autograd_available("energy_forces_stress")
    num_graphs = cell.size(0)
    not_periodic = ~pbc.any(dim=1)
    if bool(not_periodic.any()):
        g = int(not_periodic.nonzero()[0])
        raise ValueError(f"stress is undefined for structure {g}: it has no periodic axis (pbc {pbc[g].tolist()})")
    volume = torch.linalg.det(cell.detach()).abs()
    flat = volume <= 1e-12 * cell.detach().flatten(1).abs().max(dim=1).values.clamp_min(1.0) ** 3
    if bool(flat.any()):
        g = int(flat.nonzero()[0])
        raise ValueError(
            f"stress is undefined for structure {g}: its cell {cell[g].tolist()} has zero volume "
            "(give every axis a lattice vector, also the non-periodic ones)"
        )
    if not pos.requires_grad:
        pos = pos.detach().requires_grad_(True)
    with torch.enable_grad():
        strain = torch.zeros((num_graphs, 3, 3), dtype=pos.dtype, device=pos.device, requires_grad=True)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        strained_pos = pos + torch.bmm(pos.unsqueeze(1), sym[batch]).squeeze(1)
        strained_cell = cell + torch.bmm(cell, sym)
        energy = energy_fn(strained_pos, strained_cell)
        grad_pos, grad_strain = torch.autograd.grad(
            energy.sum(), (pos, strain), create_graph=training, allow_unused=True
        )
    forces = -grad_pos if grad_pos is not None else torch.zeros_like(pos)
    if grad_strain is None:
        grad_strain = torch.zeros_like(strain)
    stress = grad_strain / torch.linalg.det(cell).abs().view(-1, 1, 1)
    if not training:
        return energy.detach(), forces.detach(), stress.detach()
    return energy, forces, stress
