"""The training loss of the paper (Eq. 5): energy error plus ``rho`` times the per-atom force error (plus
the weighted squared errors of extra heads, :mod:`pyg_schnet.train.heads`, and, for periodic structures
with a reference stress, ``stress_weight`` times the mean squared error of the nine stress components)."""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
from torch import Tensor

from pyg_schnet.train.heads import head_loss


def per_molecule_loss(
    energy_pred: Tensor,
    energy_true: Tensor,
    batch: Tensor,
    rho: float = 0.0,
    force_pred: Optional[Tensor] = None,
    force_true: Optional[Tensor] = None,
    energy_weight: float = 1.0,
    *,
    head_outputs: Optional[Mapping[str, Tensor]] = None,
    head_targets: Optional[Mapping[str, Tensor]] = None,
    head_weights: Optional[Mapping[str, float]] = None,
    stress_pred: Optional[Tensor] = None,
    stress_true: Optional[Tensor] = None,
    stress_weight: float = 0.0,
) -> Tensor:
    r"""Eq. 5 of the paper for every molecule of a batch, in float64:

    .. math::
        \ell_m = w_E \left(E_m - \hat{E}_m\right)^2
            + \frac{\rho}{n_m} \sum_{i \in m} \left\lVert \mathbf{F}_i - \hat{\mathbf{F}}_i \right\rVert^2,
        \qquad \hat{\mathbf{F}}_i = -\frac{\partial \hat{E}_m}{\partial \mathbf{r}_i}.

    Energies are compared in float64 (reference energies such as -97,196 kcal/mol lose about
    0.004 kcal/mol in float32), so the prediction is cast with ``.double()``; forces likewise.
    The energy weight :math:`w_E` is 1 in the paper; ``energy_weight=0`` with ``rho > 0`` trains on
    forces only (parameters that do not move the forces, such as the last bias, then get no gradient).
    Units are those of the targets (kcal/mol and kcal/mol/Angstrom in our benchmarks), so the loss
    is in (kcal/mol)^2 and ``rho`` in Angstrom^2. The paper uses ``rho = 0`` (energy only) and
    ``rho = 100`` (energy and forces).

    Periodic structures with a reference stress can add a stress term (not in the paper) with the
    weight :math:`w_\sigma` = ``stress_weight``:

    .. math::
        \ell_m \mathrel{+}= \frac{w_\sigma}{9} \sum_{\alpha, \beta = 1}^{3}
            \left(\sigma_{m,\alpha\beta} - \hat\sigma_{m,\alpha\beta}\right)^2,
        \qquad \hat\sigma_m = \frac{1}{V_m} \left.\frac{\partial \hat E_m}{\partial \varepsilon}\right|_{\varepsilon=0}

    (the mean over the nine components of the 3 x 3 stress, so each off-diagonal pair counts twice;
    :meth:`pyg_schnet.SchNet.energy_forces_stress` for :math:`\hat\sigma`, ASE's sign). The stress is
    in the energy unit per Angstrom^3 (kcal/mol/Angstrom^3 when the energies are in kcal/mol), so
    :math:`w_\sigma` is in Angstrom^6 whatever the energy unit, like ``rho`` in Angstrom^2; in float64.

    Args:
        energy_pred: predicted energy per molecule ``[G]``.
        energy_true: reference energy per molecule ``[G]`` (or ``[G, 1]``).
        batch: molecule index of each atom ``[N]``.
        rho: weight of the force term; ``0`` ignores forces (they may then be ``None``).
        force_pred: predicted forces ``[N, 3]``; required when ``rho > 0``.
        force_true: reference forces ``[N, 3]``; required when ``rho > 0``.
        energy_weight: :math:`w_E \ge 0`, the weight of the energy term (1: Eq. 5 as published).
        head_outputs, head_targets, head_weights: extra heads (:mod:`pyg_schnet.train.heads`): predicted
            and reference values by head name (``[G]``, or ``[G, 3]`` for dipoles) and the weights
            :math:`w_h`; each adds :math:`w_h \lVert y_h - \hat y_h \rVert^2` to its molecule's loss.
        stress_pred, stress_true: predicted and reference stress ``[G, 3, 3]`` (energy unit /
            Angstrom^3); required when ``stress_weight > 0``.
        stress_weight: :math:`w_\sigma \ge 0` (Angstrom^6); ``0`` ignores the stress (it may be ``None``).

    Returns:
        ``[G]`` float64 loss of each molecule.
    """
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    if energy_weight < 0:
        raise ValueError(f"energy_weight must be >= 0, got {energy_weight}")
    energy_pred = energy_pred.reshape(-1).double()
    energy_true = energy_true.reshape(-1).double()
    if energy_pred.shape != energy_true.shape:
        raise ValueError(
            f"energy prediction has {energy_pred.numel()} molecules but the target has {energy_true.numel()}"
        )
    loss = (energy_true - energy_pred).square()
    if energy_weight != 1.0:
        loss = energy_weight * loss
    if head_weights:
        if head_outputs is None or head_targets is None:
            raise ValueError("head_weights need head_outputs and head_targets")
        heads = head_loss(head_outputs, head_targets, head_weights)
        if heads is not None:
            loss = loss + heads
    if stress_weight < 0 or not math.isfinite(stress_weight):
        raise ValueError(f"stress_weight must be a finite number >= 0, got {stress_weight}")
    if stress_weight > 0:
        loss = loss + stress_weight * stress_squared_error(stress_pred, stress_true, energy_pred.numel())
    if rho == 0:
        return loss
    if force_pred is None or force_true is None:
        raise ValueError(f"rho = {rho} needs predicted and reference forces; got None")
    if force_pred.shape != force_true.shape or force_pred.shape != (batch.numel(), 3):
        raise ValueError(
            f"forces must both be [num_atoms={batch.numel()}, 3]; got prediction "
            f"{tuple(force_pred.shape)} and reference {tuple(force_true.shape)}"
        )
    num_graphs = energy_pred.numel()
    squared = (force_true.double() - force_pred.double()).square().sum(dim=-1)  # |F_i - F_hat_i|^2
    per_molecule = torch.zeros(num_graphs, dtype=torch.float64, device=squared.device)
    per_molecule.index_add_(0, batch, squared)
    # atoms per molecule by a sum of ones: a known output size (bincount reads the batch's maximum)
    num_atoms = torch.zeros(num_graphs, dtype=torch.float64, device=squared.device)
    num_atoms.index_add_(0, batch, torch.ones_like(squared))
    return loss + rho * per_molecule / num_atoms


def stress_squared_error(stress_pred: Optional[Tensor], stress_true: Optional[Tensor], num_graphs: int) -> Tensor:
    r""":math:`\frac{1}{9} \sum_{\alpha\beta} (\sigma_{m,\alpha\beta} - \hat\sigma_{m,\alpha\beta})^2` of every
    structure ``[G]`` in float64 (energy unit / Angstrom^3, squared); both stresses ``[G, 3, 3]``."""
    if stress_pred is None or stress_true is None:
        raise ValueError("a stress term (stress_weight > 0) needs predicted and reference stress; got None")
    shape = (num_graphs, 3, 3)
    if tuple(stress_pred.shape) != shape or tuple(stress_true.shape) != shape:
        raise ValueError(
            f"stress must both be [num_structures={num_graphs}, 3, 3]; got prediction {tuple(stress_pred.shape)} "
            f"and reference {tuple(stress_true.shape)}"
        )
    return (stress_true.double() - stress_pred.double()).square().mean(dim=(1, 2))


def energy_force_loss(
    energy_pred: Tensor,
    energy_true: Tensor,
    batch: Tensor,
    rho: float = 0.0,
    force_pred: Optional[Tensor] = None,
    force_true: Optional[Tensor] = None,
    energy_weight: float = 1.0,
    *,
    head_outputs: Optional[Mapping[str, Tensor]] = None,
    head_targets: Optional[Mapping[str, Tensor]] = None,
    head_weights: Optional[Mapping[str, float]] = None,
    stress_pred: Optional[Tensor] = None,
    stress_true: Optional[Tensor] = None,
    stress_weight: float = 0.0,
) -> Tensor:
    """Eq. 5 (with the extra heads' and the stress terms) averaged over the molecules of the batch (a float64 scalar);
    see :func:`per_molecule_loss`."""
    return per_molecule_loss(
        energy_pred,
        energy_true,
        batch,
        rho,
        force_pred,
        force_true,
        energy_weight,
        head_outputs=head_outputs,
        head_targets=head_targets,
        head_weights=head_weights,
        stress_pred=stress_pred,
        stress_true=stress_true,
        stress_weight=stress_weight,
    ).mean()
