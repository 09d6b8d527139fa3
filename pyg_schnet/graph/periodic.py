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

Before searching, :func:`check_search_size` refuses a structure the search could not finish: with
:math:`V_P` the volume (area, length) of the periodic lattice vectors and :math:`h_k` the distance
between neighbouring lattice planes along periodic axis :math:`k` (:func:`lattice_heights`), the
search visits about :math:`\prod_k (2 \lceil r_c / h_k \rceil + 1)` image cells, which grows without
bound as a cell flattens (a tilt :math:`t` of one lattice vector towards another gives heights
:math:`\propto t` and :math:`\propto 1/t^2` cells and seconds); above :data:`MAX_IMAGE_CELLS` it is an
error naming the heights, the tilt and the fix (a reduced cell). The pairs expected from the density
(:func:`expected_pairs`) bound the memory the search needs, against the same limit as the all-pairs
graph (:func:`pyg_schnet.backend.graph_memory_limit`). A lattice vector shorter than
:data:`MIN_IMAGE_DISTANCE` puts every atom that close to its own image and is refused before the
search; after it, :func:`check_distinct_images` refuses any atom closer than that to another atom or
to an image (its own included).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from pyg_schnet import backend

try:  # pragma: no cover - which branch runs depends on the installation
    import vesin

    _VESIN_ERROR: Optional[str] = None
except (ImportError, OSError) as exc:  # pragma: no cover
    vesin = None
    _VESIN_ERROR = f"{type(exc).__name__}: {exc}"

#: True when periodic neighbour lists come from vesin, False for ASE's (slower) search.
USE_VESIN: bool = vesin is not None
#: Most image cells one structure's search may visit (:func:`check_search_size`). vesin visits about
#: 5 to 50 million cells per second (2026-12-03, project CPU), so the search stays under a second; real
#: cells need far fewer (a 1.9 Angstrom cube at a 4 Angstrom cutoff: 343). Assign to change it.
MAX_IMAGE_CELLS: int = 1_000_000
#: Closest accepted distance (Angstrom) of an atom to another atom or to a periodic image (its own
#: included), as the data sets' load-time check (``pyg_schnet.datasets.table.MIN_ATOM_DISTANCE``).
MIN_IMAGE_DISTANCE: float = 0.01
#: Bytes per unordered pair held while searching: vesin's two directed entries (``i``, ``j``, ``S``),
#: their int64 copies, the half-list mask and the concatenated result.
SEARCH_BYTES_PER_PAIR: int = 200

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


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` of ``[..., 3]`` vectors, written out (``np.cross`` costs tens of microseconds a call)."""
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def lattice_heights(cell: np.ndarray, pbc: Sequence[bool]) -> np.ndarray:
    r"""Distance (Angstrom) between neighbouring lattice planes along each periodic axis, ``inf`` on
    the others; ``cell`` ``[..., 3, 3]`` (rows are lattice vectors), one ``pbc`` pattern ``[3]`` for all.

    The height along periodic axis :math:`k` is the distance of :math:`\mathbf{a}_k` from the span of
    the other periodic vectors: :math:`V / \lVert \mathbf{a}_i \times \mathbf{a}_j \rVert` with
    :math:`V = |\det C|` when all three axes are periodic, :math:`\lVert \mathbf{a}_k \times
    \mathbf{a}_l \rVert / \lVert \mathbf{a}_l \rVert` for two, :math:`\lVert \mathbf{a}_k \rVert` for one.
    Every lattice vector with a non-zero :math:`k` component is at least :math:`h_k` long, and a
    search to the cutoff :math:`r_c` needs :math:`\lceil r_c / h_k \rceil` images on each side along
    :math:`k`.
    """
    periodic = [k for k in range(3) if bool(pbc[k])]
    vectors = np.asarray(cell, dtype=np.float64)
    measure = periodic_measure(vectors, pbc)
    if len(periodic) == 3:  # bulk, the common case: V over the three face areas at once
        faces = np.linalg.norm(_cross(vectors[..., [1, 2, 0], :], vectors[..., [2, 0, 1], :]), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(faces > 0, measure[..., None] / np.where(faces > 0, faces, 1.0), 0.0)
    heights = np.full(vectors.shape[:-1], np.inf)
    for k in periodic:
        others = [m for m in periodic if m != k]
        if not others:
            face = np.ones(vectors.shape[:-2])
        elif len(others) == 1:
            face = np.linalg.norm(vectors[..., others[0], :], axis=-1)
        else:
            face = np.linalg.norm(_cross(vectors[..., others[0], :], vectors[..., others[1], :]), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            heights[..., k] = np.where(face > 0, measure / np.where(face > 0, face, 1.0), 0.0)
    return heights


def periodic_measure(cell: np.ndarray, pbc: Sequence[bool]) -> np.ndarray:
    r"""Volume (3 periodic axes, Angstrom^3), area (2) or length (1) spanned by the periodic lattice
    vectors of ``cell`` ``[..., 3, 3]``: :math:`|\det C|`, :math:`\lVert \mathbf{a}_k \times \mathbf{a}_l
    \rVert` or :math:`\lVert \mathbf{a}_k \rVert` (shape ``[...]``)."""
    vectors = np.asarray(cell, dtype=np.float64)[..., [k for k in range(3) if bool(pbc[k])], :]
    count = vectors.shape[-2]
    if count == 3:
        return np.abs(np.linalg.det(vectors))
    if count == 2:
        return np.linalg.norm(_cross(vectors[..., 0, :], vectors[..., 1, :]), axis=-1)
    return np.linalg.norm(vectors[..., 0, :], axis=-1) if count else np.zeros(vectors.shape[:-2])


def expected_pairs(num_atoms, cell: np.ndarray, pbc: Sequence[bool], cutoff: float):
    r"""Unordered pairs the search is expected to return for ``num_atoms`` atoms in a structure (or
    arrays of them: ``num_atoms`` ``[...]``, ``cell`` ``[..., 3, 3]``, one ``pbc`` pattern).

    From the density of images: each atom sees the :math:`n` atoms of every image cell whose origin
    lies in the ball (disc, interval) of radius :math:`r_c`, i.e. :math:`n^2 B_d(r_c) / V_P / 2` pairs
    with :math:`B_3 = \tfrac43 \pi r_c^3`, :math:`B_2 = \pi r_c^2`, :math:`B_1 = 2 r_c` for :math:`d`
    periodic axes (exact on average for a bulk structure; an upper estimate for a slab or a wire,
    whose atoms are spread along the other axes).
    """
    n = np.asarray(num_atoms, dtype=np.float64)
    dims = int(sum(bool(p) for p in pbc))
    ball = {1: 2.0 * cutoff, 2: math.pi * cutoff**2, 3: 4.0 / 3.0 * math.pi * cutoff**3}.get(dims)
    if ball is None:
        pairs = n * (n - 1) / 2.0
    else:
        measure = periodic_measure(cell, pbc)
        with np.errstate(divide="ignore"):
            pairs = np.where(measure > 0, n * n * ball / np.where(measure > 0, measure, 1.0) / 2.0, np.inf)
    return float(pairs) if np.ndim(pairs) == 0 else pairs


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _search_size(cell: np.ndarray, pbc: Sequence[bool], cutoff: float):
    """``(lengths, heights, reach, image_cells)`` of cells ``[..., 3, 3]`` sharing one ``pbc`` pattern."""
    periodic = [k for k in range(3) if bool(pbc[k])]
    vectors = np.asarray(cell, dtype=np.float64)
    lengths = np.linalg.norm(vectors, axis=-1)
    heights = lattice_heights(vectors, pbc)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        reach = np.where(heights > 0, np.ceil(cutoff / heights), np.inf)
        reach[..., [k for k in range(3) if k not in periodic]] = 0.0
        image_cells = np.prod(2.0 * reach[..., periodic] + 1.0, axis=-1)
    return lengths, heights, reach, image_cells


def check_search_size(structure: int, num_atoms: int, cell: np.ndarray, pbc: Sequence[bool], cutoff: float) -> float:
    """Refuse a structure whose periodic neighbour search would hang or find atoms on their own images.

    Returns the expected number of unordered pairs (:func:`expected_pairs`).

    Raises:
        ValueError: a periodic lattice vector shorter than :data:`MIN_IMAGE_DISTANCE` (every atom
            that close to its own image), or more than :data:`MAX_IMAGE_CELLS` image cells to visit
            (a nearly flat cell: heights far below the cutoff), naming the structure, its cell, the
            heights, the tilt and the images needed per axis, with the fix.
    """
    periodic = [k for k in range(3) if bool(pbc[k])]
    lengths, heights, reach, cells = _search_size(cell, pbc, cutoff)
    for k in periodic:
        if lengths[k] < MIN_IMAGE_DISTANCE:
            raise ValueError(
                f"structure {structure}: lattice vector {k} of the cell {np.asarray(cell).tolist()} is "
                f"{lengths[k]:.3g} Angstrom long, so every atom is that close to its own periodic image "
                f"(closer than {MIN_IMAGE_DISTANCE:g} Angstrom): check the cell (units? a typo?)"
            )
    if not cells <= MAX_IMAGE_CELLS:
        tilts = [math.degrees(math.asin(min(1.0, heights[k] / lengths[k]))) for k in periodic if len(periodic) > 1]
        tilt = (
            f"; the most tilted lattice vector is {min(tilts):.3g} degrees from the plane of the others"
            if tilts
            else ""
        )
        images = [int(reach[k]) if math.isfinite(reach[k]) else "infinitely many" for k in periodic]
        raise ValueError(
            f"structure {structure}: the cell {np.asarray(cell).tolist()} is nearly degenerate for the "
            f"neighbour search: its heights (distances between lattice planes) are "
            f"{_numbers([heights[k] for k in periodic])} Angstrom along periodic axes {periodic}{tilt}, so "
            f"the cutoff {cutoff:g} Angstrom needs {images} images on "
            f"each side of each axis, {cells:.3g} image cells, more than the limit "
            f"pyg_schnet.graph.periodic.MAX_IMAGE_CELLS = {MAX_IMAGE_CELLS:,}: use a reduced cell of the "
            "same lattice (ase.geometry.minkowski_reduce(cell, pbc) or ase.build.niggli_reduce(atoms)), "
            "check the cell for a typo, or lower the cutoff"
        )
    return float(expected_pairs(num_atoms, cell, pbc, cutoff))


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


@torch.compiler.disable  # host-side NumPy search: torch.compile runs it eagerly
def periodic_pairs(
    pos: Tensor, batch: Tensor, cell: Tensor, pbc: Tensor, cutoff: float, graphs: Tensor
) -> Tuple[Tensor, Tensor]:
    """Unordered pairs with image offsets of the structures ``graphs`` (indices into the batch).

    Returns ``pairs`` ``[2, P]`` (global atom indices, ``(i, j)`` with ``i <= j``) and ``shifts``
    ``[P, 3]`` (integer image offsets ``S`` in the dtype of ``pos``): the pair stands for the vector
    ``pos[j] + S @ cell - pos[i]`` and its mirror ``(j, i, -S)``. Every structure is checked first
    (:func:`check_search_memory`), so a degenerate cell raises instead of hanging the search.
    """
    counts = torch.bincount(batch, minlength=cell.size(0))
    start = (torch.cumsum(counts, 0) - counts).tolist()
    counts_list = counts.tolist()
    pos_np = pos.detach().cpu().double().numpy()
    cell_np = cell.detach().cpu().double().numpy()
    pbc_np = pbc.cpu().numpy()
    check_search_memory(graphs.tolist(), counts_list, cell_np, pbc_np, cutoff)
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


@torch.compiler.disable  # host-side NumPy search: torch.compile runs it eagerly
def check_search_memory(
    graphs: Sequence[int], counts: Sequence[int], cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> float:
    """Check each structure ``graphs`` (:func:`check_search_size`) and the memory of the whole search.

    ``counts`` are the atoms per structure, ``cell`` ``[G, 3, 3]`` and ``pbc`` ``[G, 3]`` NumPy arrays.
    Returns the expected unordered pairs of all of them. The checks run on all structures of one
    ``pbc`` pattern at once (a few microseconds per structure; the last few batches are remembered,
    so an MD run in a fixed cell pays once); only a structure at fault goes through
    :func:`check_search_size` for its message.

    Raises:
        ValueError: from :func:`check_search_size`, for the first structure at fault.
        MemoryError: the expected pairs times :data:`SEARCH_BYTES_PER_PAIR` exceed
            :func:`pyg_schnet.backend.graph_memory_limit`, naming the structure with the most pairs.
    """
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = np.ascontiguousarray(pbc, dtype=bool)
    total, worst, most = _checked_sizes(
        tuple(int(g) for g in graphs),
        tuple(int(n) for n in counts),
        cell.tobytes(),
        pbc.tobytes(),
        float(cutoff),
        int(MAX_IMAGE_CELLS),
        float(MIN_IMAGE_DISTANCE),
    )
    limit = backend.graph_memory_limit()
    if total * SEARCH_BYTES_PER_PAIR > limit:
        raise MemoryError(
            f"the periodic neighbour search of this batch would return about {total:.3g} pairs and need "
            f"about {total * SEARCH_BYTES_PER_PAIR / 2**30:.1f} GiB, more than the limit of {limit / 2**30:.1f} "
            f"GiB; structure {worst} ({counts[worst]} atoms, cell {cell[worst].tolist()}, periodic "
            f"{pbc[worst].tolist()}) alone about {most:.3g} pairs, "
            f"{2 * most / counts[worst]:.3g} neighbours per atom within {cutoff:g} Angstrom: check "
            "the cell and the positions (units? too many atoms per volume?), lower the cutoff, use smaller "
            "batches, or raise the limit (PYG_SCHNET_MAX_GRAPH_BYTES, pyg_schnet.backend.MAX_GRAPH_BYTES)"
        )
    return total


@functools.lru_cache(maxsize=8)
def _checked_sizes(
    graphs: Tuple[int, ...],
    counts: Tuple[int, ...],
    cell_bytes: bytes,
    pbc_bytes: bytes,
    cutoff: float,
    max_cells: int,
    min_distance: float,
) -> Tuple[float, int, float]:
    """``(total expected pairs, structure with the most, its pairs)`` of :func:`check_search_memory`
    (arguments as bytes and tuples, so that the result can be remembered; the limits are part of the
    key). Raises for the first structure at fault, through :func:`check_search_size`."""
    cell = np.frombuffer(cell_bytes, dtype=np.float64).reshape(-1, 3, 3)
    pbc = np.frombuffer(pbc_bytes, dtype=bool).reshape(-1, 3)
    chosen = np.asarray([g for g in graphs if counts[g]], dtype=np.int64)
    if not chosen.size:
        return 0.0, 0, 0.0
    atoms = np.asarray(counts, dtype=np.int64)[chosen]
    flags = pbc[chosen]
    expected = np.zeros(chosen.size)
    at_fault = []
    patterns = flags[:1] if (flags == flags[0]).all() else np.unique(flags, axis=0)
    for pattern in patterns:
        members = np.nonzero((flags == pattern).all(axis=1))[0]
        cells = cell[chosen[members]]
        periodic = [k for k in range(3) if pattern[k]]
        lengths, _, _, image_cells = _search_size(cells, pattern, cutoff)
        bad = (lengths[:, periodic] < min_distance).any(axis=1) | ~(image_cells <= max_cells)
        at_fault.extend(chosen[members[bad]].tolist())
        expected[members] = expected_pairs(atoms[members], cells, pattern, cutoff)
    if at_fault:
        g = min(at_fault)
        check_search_size(g, counts[g], cell[g], pbc[g].tolist(), cutoff)
    k = int(np.argmax(expected))
    return float(expected.sum()), int(chosen[k]), float(expected[k])


def check_distinct_images(
    distances: Tensor, pairs: Tensor, shifts: Tensor, batch: Tensor, min_distance: Optional[float] = None
) -> None:
    """Raise :class:`ValueError` when an atom sits on, or closer than ``min_distance`` Angstrom
    (default :data:`MIN_IMAGE_DISTANCE`) to, another atom or a periodic image of an atom (its own
    included)."""
    threshold = MIN_IMAGE_DISTANCE if min_distance is None else float(min_distance)
    close = distances.detach() < threshold
    if not bool(close.any()):
        return
    p = int(close.nonzero()[0])
    i, j = int(pairs[0, p]), int(pairs[1, p])
    shift = [-int(v) for v in shifts[p].round().tolist()]  # pos[j] = pos[i] - S C
    distance = float(distances[p])
    if distance == 0:
        where = "at the same position" if not any(shift) else f"on atom {i}'s image shifted by {shift} lattice vectors"
        raise ValueError(
            f"atoms {i} and {j} of structure {int(batch[i])} coincide: atom {j} is {where} "
            "(distance 0): the energy is not differentiable there"
        )
    if i == j:
        raise ValueError(
            f"atom {i} of structure {int(batch[i])} is {distance:.3g} Angstrom from its own periodic image "
            f"shifted by {shift} lattice vectors, closer than {threshold:g} Angstrom: the lattice has a vector "
            "that short (a degenerate or mistyped cell); check the cell"
        )
    where = "" if not any(shift) else f" (atom {j} near atom {i}'s image shifted by {shift} lattice vectors)"
    raise ValueError(
        f"atoms {i} and {j} of structure {int(batch[i])} are {distance:.3g} Angstrom apart{where}, closer than "
        f"{threshold:g} Angstrom: duplicated atoms or a mistyped position"
    )
