r"""The SchNet forward pass on dense (padded) batches, with the model's own modules.

A dense batch holds ``B`` molecules padded to ``N`` atom slots: ``z`` ``[B, N]``, ``pos`` ``[B, N, 3]``
and ``mask`` ``[B, N]`` (``True`` on real atoms; see :mod:`pyg_schnet.batching.dense`). Instead of a list
of edges, every slot pair ``(i, j)`` of a row is computed and the pairs that must not interact are
masked out:

.. math::
    m_{ij} = \mathrm{mask}_i \wedge \mathrm{mask}_j \wedge (i \ne j) \;[\wedge\; d_{ij} < r_c],
    \qquad
    \mathrm{cfconv}(\mathbf{h})_i = \sum_j m_{ij}\, \mathbf{h}_j \circ W(d_{ij})\, f_c(d_{ij})

with the same embedding, Gaussian expansion, filter networks, atom-wise layers and energy head as the
sparse path (:class:`~pyg_schnet.models.SchNetRepresentation`); no parameter is copied. The result
equals the sparse path to rounding: a pair ``(i, j)`` contributes in one exactly when it is an edge
of the other (with a finite cutoff both use the pairs closer than ``r_c``; the cosine cutoff is zero
beyond it anyway). Like the sparse path, distances, Gaussians and filters are computed once per
unordered pair (they are symmetric in ``i`` and ``j``) and then laid out on the full ``[B, N, N]`` grid.

Padding never leaks into a result: padding slots get atomic number 0 and position 0 before anything
is computed (so garbage or NaN in them is harmless), masked pair distances are replaced by 1 Angstrom
before the square root (no infinite gradient at :math:`d = 0`), and the energy sums only real atoms.
The cost is that of ``B N (N - 1) / 2`` pairs, padding included.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Tuple, Union

import torch
from torch import Tensor

from pyg_schnet.models.representation import SchNetRepresentation
from pyg_schnet.models.response import energy_and_forces
from pyg_schnet.nn import AtomwiseEnergy, AtomwiseIntensive, DipoleMoment, fused
from pyg_schnet.validation import MAX_ABS_POSITION, inputs_trusted


class DenseModel(Protocol):
    """What the dense path reads of a model (a :class:`~pyg_schnet.SchNet`): its representation,
    primary head and ``max_z``."""

    representation: SchNetRepresentation
    head: Union[AtomwiseEnergy, DipoleMoment]
    max_z: int
    training: bool


#: distance (Angstrom) put in place of masked pairs before the square root: any positive value works,
#: the pairs are masked out afterwards; 1 keeps the Gaussian expansion and the cutoff well inside
#: their normal range.
_SAFE_DISTANCE = 1.0


def check_dense_inputs(z: Tensor, pos: Tensor, mask: Tensor, max_z: int) -> None:
    """Validate a dense batch: shapes and dtypes, then atomic numbers and positions of real atoms.

    Raises :class:`ValueError` naming the molecule (row) and slot (column) at fault. Padding slots are
    not checked: their contents are ignored. Inside :func:`pyg_schnet.validation.trusted_inputs` only
    shapes and dtypes are checked (no host synchronisation).
    """
    if z.dim() != 2 or z.dtype.is_floating_point or z.dtype == torch.bool:
        raise ValueError(
            f"z must be a [num_molecules, max_atoms] integer tensor of atomic numbers, got shape "
            f"{tuple(z.shape)} and {z.dtype}"
        )
    if pos.dim() != 3 or pos.size(-1) != 3:
        raise ValueError(f"pos must have shape [num_molecules, max_atoms, 3], got {tuple(pos.shape)}")
    if not pos.dtype.is_floating_point:
        raise ValueError(f"pos must be a floating-point tensor, got {pos.dtype}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True on real atoms), got {mask.dtype}")
    if mask.shape != z.shape or pos.shape[:2] != z.shape:
        raise ValueError(
            f"z {tuple(z.shape)}, pos {tuple(pos.shape)} and mask {tuple(mask.shape)} must agree on "
            "[num_molecules, max_atoms]"
        )
    if inputs_trusted():
        return
    bad_z = mask & ((z < 1) | (z >= max_z))
    if bool(bad_z.any()):
        b, n = (int(v) for v in bad_z.nonzero()[0])
        raise ValueError(
            f"molecule {b}, atom slot {n} has atomic number {int(z[b, n])}, outside 1..{max_z - 1} of the embedding"
        )
    bad_pos = mask & ~(pos.detach().abs() <= MAX_ABS_POSITION).all(dim=-1)  # NaN compares false
    if bool(bad_pos.any()):
        b, n = (int(v) for v in bad_pos.nonzero()[0])
        if not bool(torch.isfinite(pos[b, n]).all()):
            raise ValueError(f"molecule {b}, atom slot {n} has a non-finite position {pos[b, n].tolist()}")
        raise ValueError(
            f"molecule {b}, atom slot {n} has position {pos[b, n].tolist()}, beyond +-{MAX_ABS_POSITION:g} "
            "Angstrom (MAX_ABS_POSITION): a unit mistake or a corrupt coordinate"
        )


class DensePairs(NamedTuple):
    """The pairs of a dense batch, each unordered slot pair ``i < j`` once (``P = N (N - 1) / 2``)."""

    #: ``[B, P]`` true where both slots hold real atoms (and, with a cutoff, are closer than it)
    mask: Tensor
    #: distances ``[B, P]`` in Angstrom (:data:`_SAFE_DISTANCE` on masked pairs)
    distances: Tensor
    #: ``[N * N]`` position of slot pair ``(i, j)`` in the pair list, ``P`` (a zero row) on the diagonal
    to_square: Tensor


def slot_pairs(num_slots: int, device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Slots ``i`` ``[P]`` and ``j`` ``[P]`` of the pairs ``i < j``, and the map from ``(i, j)`` to a
    pair ``[N * N]`` (symmetric, ``P`` on the diagonal)."""
    i, j = torch.triu_indices(num_slots, num_slots, offset=1, device=device)
    num_pairs = i.numel()
    to_square = torch.full((num_slots, num_slots), num_pairs, dtype=torch.long, device=device)
    index = torch.arange(num_pairs, device=device)
    to_square[i, j] = index
    to_square[j, i] = index
    return i, j, to_square.flatten()


def dense_pairs(pos: Tensor, mask: Tensor, cutoff: Optional[float] = None) -> DensePairs:
    r"""Distances :math:`d_{ij} = \lVert \mathbf{r}_i - \mathbf{r}_j \rVert` of every slot pair
    ``i < j`` of each row, and which pairs interact.

    Masked pairs get :data:`_SAFE_DISTANCE` instead, chosen before the square root so that neither
    the value nor its gradient is ever infinite or NaN. Raises :class:`ValueError` when two real atoms
    of a molecule coincide (not checked inside :func:`pyg_schnet.validation.trusted_inputs`).
    """
    i, j, to_square = slot_pairs(mask.size(1), mask.device)
    real = mask[:, i] & mask[:, j]
    vec = pos[:, i] - pos[:, j]
    squared = (vec * vec).sum(dim=-1)
    same = real & (squared == 0)
    if not inputs_trusted() and bool(same.any()):
        b, p = (int(v) for v in same.nonzero()[0])
        raise ValueError(
            f"atoms in slots {int(i[p])} and {int(j[p])} of molecule {b} are at the same position "
            "(distance 0): the energy is not differentiable there"
        )
    distances = torch.sqrt(torch.where(real, squared, torch.full_like(squared, _SAFE_DISTANCE**2)))
    if cutoff is not None:
        real = real & (distances < cutoff)
    return DensePairs(real, distances, to_square)


def dense_atom_features(
    model: DenseModel, z: Tensor, pos: Tensor, mask: Tensor, distance_range: Optional[Tuple[float, float]] = None
) -> Tensor:
    """Atom features ``[B, N, hidden_channels]`` after the interaction blocks (padding rows meaningless).

    ``z`` and ``pos`` must already be zero on padding (see :func:`dense_energy`). Distances, Gaussian
    expansions and filters are computed once per pair ``i < j`` (they are symmetric), then laid out
    as ``[B, N, N, F]`` with zeros on the diagonal and on masked pairs, and the cfconv sum over ``j``
    is a product and a sum over that axis. ``distance_range``: bounds of the real pairs' distances known
    on the host, for the Gaussian window (else read from the device).
    """
    rep = model.representation
    batch_size, num_slots = mask.shape
    pairs = dense_pairs(pos, mask, rep.cutoff)
    weight = pairs.mask.unsqueeze(-1).to(pos.dtype)  # [B, P, 1]
    convs = rep.convs
    if rep.uses_fast_filters():  # Gaussian window, one first layer
        if distance_range is not None and rep.cutoff is not None:  # beyond the cutoff the filter is zero
            distance_range = (min(distance_range[0], rep.cutoff), min(distance_range[1], rep.cutoff))
        # masked pairs (distance 1 Angstrom) get weight 0 below: their filters need not be exact
        flat = fused.fused_filters(rep.rbf, convs, pairs.distances.reshape(-1), distance_range)
        filters = [W.view(batch_size, pairs.distances.size(1), W.size(-1)) for W in flat]
    else:
        rbf = rep.rbf(pairs.distances)  # [B, P, K]
        filters = [block.conv.filters(pairs.distances, rbf) for block in rep.blocks]
    x = rep.embedding(z)
    for block, W in zip(rep.blocks, filters):
        W = W * weight  # [B, P, F]
        W = torch.cat([W, W.new_zeros(batch_size, 1, W.size(-1))], dim=1)  # pair P: the zero filter
        W = W[:, pairs.to_square].view(batch_size, num_slots, num_slots, W.size(-1))  # [B, N, N, F]
        h = block.in2filter(x)  # [B, N, F]
        h = (W * h.unsqueeze(1)).sum(dim=2)  # sum over neighbours j
        x = x + block.out(block.act(block.filter2out(h)))
    return x


def dense_energy(
    model: DenseModel, z: Tensor, pos: Tensor, mask: Tensor, distance_range: Optional[Tuple[float, float]] = None
) -> Tensor:
    r"""The primary output per molecule ``[B]`` (``distance_range``: see :func:`dense_atom_features`):
    the total energy :math:`E_b = \sum_{i:\,\mathrm{mask}_{bi}} e(\mathbf{x}_{bi}, Z_{bi})` of the
    paper's head, the mean over the real atoms for an intensive head
    (:class:`~pyg_schnet.nn.AtomwiseIntensive`), the dipole norm of neutral molecules for a
    :class:`~pyg_schnet.nn.DipoleMoment` head (the sparse path's numbers; a total charge other than 0
    needs the sparse path)."""
    check_dense_inputs(z, pos, mask, model.max_z)
    head = model.head
    z = torch.where(mask, z.long(), 0)
    pos = torch.where(mask.unsqueeze(-1), pos, torch.zeros_like(pos)).to(head.std.dtype)  # differentiable
    x = dense_atom_features(model, z, pos, mask, distance_range)
    count = mask.sum(dim=1).clamp_min(1).to(pos.dtype)  # [B]
    if isinstance(head, DipoleMoment):
        q = head.std * head.net(x).squeeze(-1)  # [B, N]
        q = torch.where(mask, q, torch.zeros_like(q))
        q = torch.where(mask, q - (q.sum(dim=1) / count).unsqueeze(-1), torch.zeros_like(q))  # sum_i q_i = 0
        centre = pos.sum(dim=1) / count.unsqueeze(-1)  # padding positions are 0
        mu = (q.unsqueeze(-1) * (pos - centre.unsqueeze(1))).sum(dim=1)  # q = 0 on padding
        return torch.linalg.vector_norm(mu, dim=-1) if head.magnitude else mu
    atom_energies = head.atom_energies(x, z)  # [B, N]
    total = torch.where(mask, atom_energies, torch.zeros_like(atom_energies)).sum(dim=1)
    return total / count if isinstance(head, AtomwiseIntensive) else total


def dense_energy_and_forces(
    model: DenseModel, z: Tensor, pos: Tensor, mask: Tensor, distance_range: Optional[Tuple[float, float]] = None
) -> Tuple[Tensor, Tensor]:
    r"""Energies ``[B]`` (the primary output, :func:`dense_energy`) and forces
    :math:`-\partial E / \partial \mathbf{r}` ``[B, N, 3]`` (zero on padding).

    Like :meth:`pyg_schnet.SchNet.energy_and_forces`: the forces keep their graph in training mode
    (double backward for a force loss) and both results are detached in eval mode.
    """
    return energy_and_forces(lambda p: dense_energy(model, z, p, mask, distance_range), pos, model.training)
