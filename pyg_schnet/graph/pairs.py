r"""Neighbour search: the interaction graph of SchNet behind one function, :func:`build_graph`.

The paper lets every pair of atoms in a molecule interact (no cutoff). With ``cutoff=None`` the
graph is therefore the complete directed graph of each molecule, built by index arithmetic (what
``torch_cluster.radius_graph`` returns for an infinite radius, without the tree search). With a
finite ``cutoff`` (Angstrom) the pairs come from ``torch_cluster.radius_graph``, per molecule, without
self loops; its neighbour limit is sized from the largest molecule, so no neighbour is ever dropped.

Periodic structures (a ``cell`` and per-axis ``pbc``, see :mod:`pyg_schnet.graph.periodic`) add an integer
image offset ``S`` to each pair: :func:`build_periodic_pairs` returns pairs ``(i, j)`` with offsets,
:func:`edge_distances` turns them into :math:`\lVert \mathbf{r}_j + \mathbf{S} C - \mathbf{r}_i \rVert`.

An all-pairs graph grows as :math:`n^2`: :mod:`pyg_schnet.graph.memory` estimates its memory before it
is built.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.graph.periodic import periodic_pairs


def full_graph(batch: Tensor) -> Tensor:
    """All ordered pairs ``(j, i)``, ``j != i``, of atoms in the same molecule.

    Args:
        batch: molecule index of each atom ``[N]``, sorted (PyG's convention).

    Returns:
        ``edge_index`` ``[2, E]`` with ``E = sum_m n_m (n_m - 1)``; row 0 the source ``j``, row 1 the
        target ``i``, grouped by target.
    """
    num_atoms = batch.numel()
    if num_atoms == 0:
        return batch.new_empty((2, 0))
    counts = torch.bincount(batch)
    start = torch.cumsum(counts, 0) - counts
    per_atom = counts[batch]  # size of each atom's molecule
    target = torch.repeat_interleave(torch.arange(num_atoms, device=batch.device), per_atom)
    block_start = torch.repeat_interleave(start[batch], per_atom)
    # position of each pair inside its target's block of n_m candidates
    first_of_block = torch.repeat_interleave(torch.cumsum(per_atom, 0) - per_atom, per_atom)
    source = block_start + torch.arange(target.numel(), device=batch.device) - first_of_block
    keep = source != target
    return torch.stack([source[keep], target[keep]])


def full_pairs(batch: Tensor) -> Tensor:
    """Every unordered pair of atoms of one molecule once, as ``[2, P]`` with row 0 < row 1."""
    edge_index = full_graph(batch)
    return edge_index[:, edge_index[0] < edge_index[1]]


def mirror(pairs: Tensor) -> Tensor:
    """Directed edges of unordered ``pairs`` ``[2, P]``: the pairs, then the same pairs reversed ``[2, 2P]``."""
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def radius_graph(pos: Tensor, r: float, batch: Tensor, max_num_neighbors: int) -> Tensor:
    """Directed pairs ``(j, i)`` of distinct atoms of one molecule closer than ``r`` Angstrom.

    Returns ``edge_index`` ``[2, E]`` with sources (neighbours ``j``) in row 0 and targets (centres
    ``i``) in row 1, PyG's ``source_to_target`` flow. ``max_num_neighbors`` is passed to
    torch-cluster, which keeps at most that many neighbours per centre; callers size it so that
    nothing is dropped (see :func:`build_pairs`). Without torch-cluster
    (:data:`pyg_schnet.backend.USE_TORCH_CLUSTER` false) every pair of :func:`full_graph` is tested:
    the same pairs, never truncated.
    """
    compiled = backend.cluster() if backend.USE_TORCH_CLUSTER else None
    if compiled is not None:
        return compiled.radius_graph(
            pos, r=r, batch=batch, loop=False, max_num_neighbors=max_num_neighbors, flow="source_to_target"
        )
    edge_index = full_graph(batch)
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    keep = (vec * vec).sum(dim=-1) <= r * r
    return edge_index[:, keep]


def build_pairs(
    pos: Tensor,
    batch: Tensor,
    cutoff: Optional[float] = None,
    max_num_neighbors: Optional[int] = None,
) -> Tensor:
    """Like :func:`build_graph`, but each unordered pair once (``[2, P]``, row 0 < row 1).

    Distances, Gaussian expansions and cfconv filters are symmetric, ``W(d_ij) = W(d_ji)``: computing
    them per pair and mirroring (:func:`mirror`) halves that work. ``build_graph`` is
    ``mirror(build_pairs(...))`` up to the order of the edges.
    """
    if cutoff is None:
        pairs = full_pairs(batch)
    else:
        largest = int(torch.bincount(batch).max()) if batch.numel() else 1
        # a centre has at most (largest - 1) neighbours, so this limit can never drop one
        edge_index = radius_graph(pos, float(cutoff), batch, max_num_neighbors=max(largest - 1, 1))
        pairs = edge_index[:, edge_index[0] < edge_index[1]]
    check_max_num_neighbors(pairs, batch, max_num_neighbors)
    return pairs


def check_max_num_neighbors(pairs: Tensor, batch: Tensor, max_num_neighbors: Optional[int]) -> None:
    """Raise :class:`ValueError` naming the first atom with more than ``max_num_neighbors`` neighbours
    (each pair counts for both of its atoms, an atom's pair with its own image twice)."""
    if max_num_neighbors is None or not pairs.numel():
        return
    counts = torch.bincount(pairs.reshape(-1), minlength=batch.numel())
    worst = int(counts.argmax())
    if int(counts[worst]) > max_num_neighbors:
        raise ValueError(
            f"atom {worst} (molecule {int(batch[worst])}) has {int(counts[worst])} neighbours "
            f"within the cutoff, more than max_num_neighbors={max_num_neighbors}; "
            "raise the limit or lower the cutoff (pyg-schnet never drops neighbours)"
        )


def build_graph(
    pos: Tensor,
    batch: Tensor,
    cutoff: Optional[float] = None,
    max_num_neighbors: Optional[int] = None,
) -> Tensor:
    """The interaction graph of a batch of molecules.

    Args:
        pos: atom positions ``[N, 3]`` in Angstrom.
        batch: sorted molecule index of each atom ``[N]``.
        cutoff: interaction radius in Angstrom; ``None`` connects every pair in a molecule (paper).
        max_num_neighbors: optional limit on neighbours per atom, as a guard on memory. It never
            truncates: an atom with more neighbours raises :class:`ValueError` naming the atom and
            the counts. ``None`` means no limit.

    Returns:
        ``edge_index`` ``[2, E]``: row 0 neighbour ``j``, row 1 centre ``i`` (messages ``j -> i``).
    """
    return mirror(build_pairs(pos, batch, cutoff, max_num_neighbors))


def edge_distances(
    pos: Tensor,
    edge_index: Tensor,
    shifts: Optional[Tensor] = None,
    cell: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
) -> Tensor:
    r"""Distances (Angstrom) of each edge ``[E]``.

    Without ``shifts``: :math:`d_{ij} = \lVert \mathbf{r}_j - \mathbf{r}_i \rVert` with ``i = edge_index[0]``,
    ``j = edge_index[1]``. With integer image offsets ``shifts`` ``[E, 3]``, the cells ``cell``
    ``[G, 3, 3]`` (rows are lattice vectors) and the structure of each atom ``batch`` ``[N]``:
    :math:`d_{ij\mathbf{S}} = \lVert \mathbf{r}_j + \mathbf{S} C_{g(i)} - \mathbf{r}_i \rVert`, differentiable
    in ``pos`` and ``cell``.
    """
    vec = pos[edge_index[1]] - pos[edge_index[0]]
    if shifts is not None:
        if cell is None or batch is None:
            raise ValueError("edge_distances with shifts needs the cell and the batch vector")
        vec = vec + torch.bmm(shifts.unsqueeze(1), cell[batch[edge_index[0]]]).squeeze(1)
    return torch.linalg.vector_norm(vec, dim=-1)


def build_periodic_pairs(
    pos: Tensor,
    batch: Tensor,
    cell: Tensor,
    pbc: Tensor,
    cutoff: Optional[float],
    max_num_neighbors: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """The unordered pairs of a batch that holds periodic structures, with their image offsets.

    Structures with a periodic axis get every image pair within ``cutoff`` (:mod:`pyg_schnet.graph.periodic`);
    those without one (``pbc`` all ``False``) get the molecular radius graph of :func:`build_pairs`.

    Args:
        pos: positions ``[N, 3]`` in Angstrom.
        batch: sorted structure index of each atom ``[N]``.
        cell: lattice vectors as rows ``[G, 3, 3]`` (Angstrom; ignored for non-periodic structures).
        pbc: periodic axes ``[G, 3]`` bool.
        cutoff: interaction radius in Angstrom (a periodic structure needs one).
        max_num_neighbors: as in :func:`build_graph` (a guard that raises, never truncates).

    Returns:
        ``pairs`` ``[2, P]`` and ``shifts`` ``[P, 3]`` (integers in the dtype of ``pos``, zero for
        molecules): pair ``p`` stands for the directed edges ``(i, j, S)`` and ``(j, i, -S)``; its
        distance is :func:`edge_distances` ``(pos, pairs, shifts, cell, batch)``.
    """
    if cutoff is None:
        raise ValueError(
            "a periodic structure needs a finite cutoff: with cutoff=None every atom would interact "
            "with infinitely many periodic images; build the model with a cutoff, e.g. SchNet(cutoff=5.0)"
        )
    periodic = pbc.any(dim=1)
    parts, shift_parts = [], []
    molecular_atoms = (~periodic[batch]).nonzero().flatten()
    if molecular_atoms.numel():
        local = build_pairs(pos[molecular_atoms], batch[molecular_atoms], cutoff)
        parts.append(molecular_atoms[local])
        shift_parts.append(pos.new_zeros((local.size(1), 3)))
    pairs, shifts = periodic_pairs(pos, batch, cell, pbc, float(cutoff), periodic.nonzero().flatten())
    parts.append(pairs)
    shift_parts.append(shifts)
    pairs, shifts = torch.cat(parts, dim=1), torch.cat(shift_parts, dim=0)
    check_max_num_neighbors(pairs, batch, max_num_neighbors)
    return pairs, shifts
