"""Neighbour search: the interaction graph of SchNet behind one function, :func:`build_graph`.

The paper lets every pair of atoms in a molecule interact (no cutoff). With ``cutoff=None`` the
graph is therefore the complete directed graph of each molecule, built by index arithmetic (what
``torch_cluster.radius_graph`` returns for an infinite radius, without the tree search). With a
finite ``cutoff`` (Angstrom) the pairs come from ``torch_cluster.radius_graph``, per molecule, without
self loops; its neighbour limit is sized from the largest molecule, so no neighbour is ever dropped.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _backend


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
        edge_index = _backend.radius_graph(pos, float(cutoff), batch, max_num_neighbors=max(largest - 1, 1))
        pairs = edge_index[:, edge_index[0] < edge_index[1]]
    if max_num_neighbors is not None and pairs.numel():
        counts = torch.bincount(pairs.reshape(-1), minlength=pos.size(0))
        worst = int(counts.argmax())
        if int(counts[worst]) > max_num_neighbors:
            raise ValueError(
                f"atom {worst} (molecule {int(batch[worst])}) has {int(counts[worst])} neighbours "
                f"within the cutoff, more than max_num_neighbors={max_num_neighbors}; "
                "raise the limit or lower the cutoff (pyg-schnet never drops neighbours)"
            )
    return pairs


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


def edge_distances(pos: Tensor, edge_index: Tensor) -> Tensor:
    r"""Distances :math:`d_{ij} = \lVert \mathbf{r}_i - \mathbf{r}_j \rVert` (Angstrom) of each edge ``[E]``."""
    vec = pos[edge_index[1]] - pos[edge_index[0]]
    return torch.linalg.vector_norm(vec, dim=-1)
