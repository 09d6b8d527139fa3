r"""Periodic structures: checks on ``cell`` / ``pbc`` and the neighbour search over periodic images.

A periodic structure is given by positions :math:`\mathbf{r}_i` (Angstrom), a cell whose *rows* are
the lattice vectors :math:`\mathbf{a}_1, \mathbf{a}_2, \mathbf{a}_3` (Angstrom, ASE's convention) and
a flag per axis saying whether the structure repeats along it. Atom ``i`` interacts with every image
:math:`\mathbf{r}_j + \mathbf{S} C` of every atom ``j`` (itself included, for :math:`\mathbf{S} \neq 0`)
closer than the cutoff :math:`r_c`:

.. math::
    \mathbf{d}_{ij\mathbf{S}} = \mathbf{r}_j + \mathbf{S}\, C - \mathbf{r}_i, \qquad
    \lVert \mathbf{d}_{ij\mathbf{S}} \rVert < r_c, \qquad \mathbf{S} \in \mathbb{Z}^3
    \;(\mathbf{S}_k = 0 \text{ on non-periodic axes})

A cell shorter than the cutoff gives several images of the same neighbour, and an atom its own
images. The search only returns the integer image offsets :math:`\mathbf{S}`; the distances are then
computed in PyTorch from ``pos`` and ``cell`` (:func:`pyg_schnet.graph.edge_distances`), so autograd
reaches both (forces and stress).

The search is vesin's (:class:`vesin.NeighborList`, a C++ cell list), run per structure; when vesin
cannot be imported, ASE's :func:`ase.neighborlist.primitive_neighbor_list` (same pairs, 40 to 350 times
slower) with one :class:`RuntimeWarning`. :data:`USE_VESIN` says which is in use (tests flip it).
``docs/periodic.md`` gives the measurements behind that choice.
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

try:  # pragma: no cover - which branch runs depends on the installation
    import vesin

    _VESIN_ERROR: Optional[str] = None
except (ImportError, OSError) as exc:  # pragma: no cover
    vesin = None
    _VESIN_ERROR = f"{type(exc).__name__}: {exc}"

#: True when periodic neighbour lists come from vesin, False for ASE's (slower) search.
USE_VESIN: bool = vesin is not None

if _VESIN_ERROR is not None:  # pragma: no cover
    warnings.warn(
        f"pyg-schnet: could not import vesin ({_VESIN_ERROR}); periodic neighbour lists fall back to "
        "ASE's primitive_neighbor_list: same pairs, 40-350x slower. Install it with `pip install vesin`.",
        RuntimeWarning,
        stacklevel=2,
    )


def check_cell_and_pbc(
    cell: Optional[Tensor], pbc: Optional[Tensor], num_graphs: int, pos: Tensor
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Validate ``cell`` ``[G, 3, 3]`` (Angstrom) and ``pbc`` ``[G, 3]`` (bool) for ``G`` structures.

    Returns ``(cell, pbc)`` with ``cell`` in the dtype and on the device of ``pos``, or
    ``(None, None)`` when no structure of the batch is periodic (the molecular path). A single
    structure may also pass ``cell`` ``[3, 3]`` and ``pbc`` ``[3]``.

    Raises:
        ValueError: a ``pbc`` without ``cell`` (or the reverse), wrong shapes or dtypes, a non-finite
            cell, or a periodic axis whose lattice vector is zero or dependent on the others, naming
            the structure at fault.
    """
    if cell is None and pbc is None:
        return None, None
    if pbc is None:
        raise ValueError("a cell was given without pbc: pass pbc [num_graphs, 3] (bool per axis) with the cell")
    if not isinstance(pbc, Tensor):
        pbc = torch.as_tensor(pbc)
    if pbc.dtype != torch.bool:
        raise ValueError(f"pbc must be a bool tensor [num_graphs, 3], got {pbc.dtype}")
    if pbc.dim() == 1:
        pbc = pbc.unsqueeze(0)
    if pbc.shape != (num_graphs, 3):
        raise ValueError(f"pbc must have shape [num_graphs, 3] = [{num_graphs}, 3], got {tuple(pbc.shape)}")
    if cell is None:
        if bool(pbc.any()):
            g = int(pbc.any(dim=1).nonzero()[0])
            raise ValueError(f"structure {g} has pbc {pbc[g].tolist()} but no cell was given")
        return None, None
    if not isinstance(cell, Tensor):
        cell = torch.as_tensor(cell)
    if not cell.dtype.is_floating_point:
        raise ValueError(f"cell must be a floating-point tensor [num_graphs, 3, 3] in Angstrom, got {cell.dtype}")
    if cell.dim() == 2:
        cell = cell.unsqueeze(0)
    if cell.shape != (num_graphs, 3, 3):
        raise ValueError(f"cell must have shape [num_graphs, 3, 3] = [{num_graphs}, 3, 3], got {tuple(cell.shape)}")
    pbc = pbc.to(pos.device)
    if not bool(pbc.any()):
        return None, None
    cell = cell.to(device=pos.device, dtype=pos.dtype)
    finite = torch.isfinite(cell).flatten(1).all(dim=1)
    if not bool(finite.all()):
        g = int((~finite).nonzero()[0])
        raise ValueError(f"structure {g} has a non-finite cell {cell[g].tolist()}")
    # the periodic lattice vectors must be independent: the Gram determinant of their directions
    # (the squared volume of the unit vectors, in [0, 1]) is zero for a zero or dependent vector;
    # non-periodic rows are replaced by the identity so they do not count
    vectors = cell.detach().double()
    units = vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True).clamp_min(1e-300)
    units = torch.where(pbc.unsqueeze(-1), units, torch.zeros_like(units))
    gram = units @ units.transpose(1, 2) + torch.diag_embed((~pbc).double())
    degenerate = torch.linalg.det(gram) < 1e-12
    if bool(degenerate.any()):
        g = int(degenerate.nonzero()[0])
        raise ValueError(
            f"structure {g} is periodic along axes {pbc[g].nonzero().flatten().tolist()} but its lattice "
            f"vectors {cell[g].tolist()} are zero or linearly dependent there"
        )
    return cell, pbc


def neighbor_list(pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> Tuple[np.ndarray, ...]:
    r"""All pairs ``(i, j, S)`` of one structure with :math:`\lVert \mathbf{r}_j + S C - \mathbf{r}_i\rVert < r_c`.

    Both directions of each pair are listed; ``i == j`` only with ``S != 0``. Returns ``i``, ``j``
    (int64 ``[E]``) and ``S`` (int64 ``[E, 3]``).
    """
    if USE_VESIN:
        i, j, shifts = vesin.NeighborList(cutoff=float(cutoff), full_list=True).compute(
            pos, cell, [bool(p) for p in pbc], "ijS"
        )
    else:
        from ase.neighborlist import primitive_neighbor_list

        i, j, shifts = primitive_neighbor_list(
            "ijS", pbc, cell, pos, float(cutoff), self_interaction=False, use_scaled_positions=False
        )
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)


def half_pairs(i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    r"""Mask keeping one of each mirror couple ``(i, j, S)`` / ``(j, i, -S)`` of a symmetric list.

    Keeps ``i < j``, and for an atom with its own image (``i == j``) the offset whose first non-zero
    component is positive, so that :func:`pyg_schnet.graph.mirror` gives back the full list.
    """
    s = shifts
    first_positive = (s[:, 0] > 0) | ((s[:, 0] == 0) & ((s[:, 1] > 0) | ((s[:, 1] == 0) & (s[:, 2] > 0))))
    return (i < j) | ((i == j) & first_positive)


def periodic_pairs(
    pos: Tensor, batch: Tensor, cell: Tensor, pbc: Tensor, cutoff: float, graphs: Tensor
) -> Tuple[Tensor, Tensor]:
    """Unordered pairs with image offsets of the structures ``graphs`` (indices into the batch).

    Returns ``pairs`` ``[2, P]`` (global atom indices, ``(i, j)`` with ``i <= j``) and ``shifts``
    ``[P, 3]`` (integer image offsets ``S`` in the dtype of ``pos``): the pair stands for the vector
    ``pos[j] + S @ cell - pos[i]`` and its mirror ``(j, i, -S)``.
    """
    counts = torch.bincount(batch, minlength=cell.size(0))
    start = (torch.cumsum(counts, 0) - counts).tolist()
    counts_list = counts.tolist()
    pos_np = pos.detach().cpu().double().numpy()
    cell_np = cell.detach().cpu().double().numpy()
    pbc_np = pbc.cpu().numpy()
    all_pairs, all_shifts = [], []
    for g in graphs.tolist():
        lo, n = start[g], counts_list[g]
        if n == 0:
            continue
        i, j, s = neighbor_list(pos_np[lo : lo + n], cell_np[g], pbc_np[g], cutoff)
        keep = half_pairs(i, j, s)
        all_pairs.append(np.stack([i[keep], j[keep]]) + lo)
        all_shifts.append(s[keep])
    if not all_pairs:
        return batch.new_empty((2, 0)), pos.new_empty((0, 3))
    pairs = torch.from_numpy(np.concatenate(all_pairs, axis=1)).to(batch.device)
    shifts = torch.from_numpy(np.concatenate(all_shifts, axis=0)).to(device=pos.device, dtype=pos.dtype)
    return pairs, shifts


def check_distinct_images(distances: Tensor, pairs: Tensor, shifts: Tensor, batch: Tensor) -> None:
    """Raise :class:`ValueError` when an atom sits on another atom or on a periodic image of one."""
    same = distances == 0
    if bool(same.any()):
        p = int(same.nonzero()[0])
        i, j = int(pairs[0, p]), int(pairs[1, p])
        shift = [-int(v) for v in shifts[p].round().tolist()]  # pos[j] = pos[i] - S C
        where = "at the same position" if not any(shift) else f"on atom {i}'s image shifted by {shift} lattice vectors"
        raise ValueError(
            f"atoms {i} and {j} of structure {int(batch[i])} coincide: atom {j} is {where} "
            "(distance 0): the energy is not differentiable there"
        )
