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

**Sizes known on the host.** Every size above (molecules, atoms per molecule, pairs) is read from the
``batch`` vector, which lives on the device: on an accelerator each read waits for the device. A
:class:`HostLayout` carries the sizes of a batch as Python numbers (from PyG's ``Batch._slice_dict``,
which stays on the CPU after ``batch.to(device)``), and optionally the range of its pair distances
computed from positions still on the host. Given one, :func:`build_pairs` builds the all-pairs graph on
the host (the same pairs in the same order as :func:`full_pairs`) and, for molecules of at most
:data:`ALL_PAIRS_MAX_ATOMS` atoms, uses it under a cutoff too: pairs beyond the cutoff get exactly zero
filter and zero derivative from the cosine cutoff (:class:`~pyg_schnet.nn.CosineCutoff`), so energies,
forces and weight gradients are those of the radius graph, with no data-dependent edge count.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.graph.memory import check_all_pairs_memory_of
from pyg_schnet.graph.periodic import periodic_pairs

#: With a cutoff and a :class:`HostLayout`, molecules of at most this many atoms keep all their pairs
#: (pairs beyond the cutoff add exact zeros; at most 496 pairs per molecule), larger ones get the radius
#: graph (a data-dependent number of edges: one host synchronisation on an accelerator).
ALL_PAIRS_MAX_ATOMS = 32


@functools.lru_cache(maxsize=64)
def _molecule_pairs(num_atoms: int) -> np.ndarray:
    """Pairs ``(j, i)``, ``j < i``, of one molecule ``[2, n (n - 1) / 2]`` ordered by ``i`` then ``j``
    (the order of :func:`full_pairs`)."""
    i, j = np.tril_indices(num_atoms, -1)
    return np.stack([j, i]).astype(np.int64)


@functools.lru_cache(maxsize=32)
def host_all_pairs(counts: Tuple[int, ...]) -> np.ndarray:
    """:func:`full_pairs` of molecules of ``counts`` atoms, computed on the host ``[2, P]`` (cached:
    do not write to it)."""
    parts, start = [], 0
    for n in counts:
        if n > 1:
            parts.append(_molecule_pairs(n) + start)
        start += n
    return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.int64)


class HostLayout:
    r"""The sizes of a batch of molecules as Python numbers, known without reading the device.

    Args:
        counts: atoms of each molecule, in batch order (the ``batch`` vector numbers them ``0..G-1``).
        distance_range: ``(d_min, d_max)`` of the pair distances of the batch (Angstrom) when the
            positions were known on the host, else ``None``.

    Attributes:
        num_graphs, num_atoms, largest (atoms of the largest molecule), num_all_pairs
        (:math:`\sum_m n_m (n_m - 1) / 2`).
    """

    def __init__(self, counts: Sequence[int], distance_range: Optional[Tuple[float, float]] = None) -> None:
        self.counts: Tuple[int, ...] = tuple(int(n) for n in counts)
        if any(n < 0 for n in self.counts):
            raise ValueError(f"HostLayout: atom counts must be >= 0, got {self.counts}")
        self.num_graphs = len(self.counts)
        self.num_atoms = sum(self.counts)
        self.largest = max(self.counts, default=0)
        self.num_all_pairs = sum(n * (n - 1) // 2 for n in self.counts)
        self.distance_range = distance_range

    def __repr__(self) -> str:
        return (
            f"HostLayout({self.num_graphs} molecules, {self.num_atoms} atoms, largest {self.largest}, "
            f"distance_range={self.distance_range})"
        )

    @classmethod
    def of_batch(cls, batch: Any) -> Optional["HostLayout"]:
        """The layout of a PyG ``Batch``, from its ``_slice_dict`` (a CPU tensor of atom offsets that
        collation writes and ``batch.to(device)`` leaves on the CPU); ``None`` for anything else (a
        single ``Data``, a batch built by hand). The distance range is filled in when ``batch.pos`` is
        on the CPU (:meth:`from_host_positions`)."""
        slices = getattr(batch, "_slice_dict", None)
        offsets = slices.get("z", slices.get("pos")) if isinstance(slices, dict) else None
        if not isinstance(offsets, Tensor) or offsets.device.type != "cpu" or offsets.dim() != 1:
            return None
        counts = np.diff(offsets.numpy()).tolist()
        z = getattr(batch, "z", None)
        if not isinstance(z, Tensor) or z.dim() != 1 or z.numel() != sum(counts):
            return None
        pos = getattr(batch, "pos", None)
        if isinstance(pos, Tensor) and pos.device.type == "cpu":
            return cls.from_host_positions(counts, pos)
        return cls(counts)

    @classmethod
    def from_host_positions(cls, counts: Sequence[int], pos: Tensor) -> "HostLayout":
        """The layout with the distance range of all pairs of each molecule, computed from the CPU
        tensor ``pos`` ``[N, 3]`` (Angstrom) in float64 on the host."""
        if pos.device.type != "cpu":
            raise ValueError(f"HostLayout.from_host_positions needs positions on the CPU, got {pos.device}")
        layout = cls(counts)
        if pos.shape != (layout.num_atoms, 3):
            raise ValueError(
                f"HostLayout: pos must be [{layout.num_atoms}, 3] for these counts, got {tuple(pos.shape)}"
            )
        pairs = host_all_pairs(layout.counts)
        if pairs.shape[1]:
            r = pos.detach().numpy().astype(np.float64, copy=False)
            d = np.linalg.norm(r[pairs[1]] - r[pairs[0]], axis=1)
            d_min, d_max = float(d.min()), float(d.max())
            if math.isfinite(d_min) and math.isfinite(d_max):  # NaN or inf: left to the model's checks
                layout.distance_range = (d_min, d_max)
        return layout

    def all_pairs(self, device: torch.device) -> Tensor:
        """:func:`full_pairs` of this layout ``[2, P]`` on ``device``, built on the host (no read of the
        device; copied without waiting for it)."""
        # a copy: the cached host array must not be shared with a tensor someone may write to
        return torch.from_numpy(host_all_pairs(self.counts).copy()).to(device, non_blocking=True)

    def check_atoms(self, num_atoms: int) -> None:
        """Raise :class:`ValueError` unless the layout describes ``num_atoms`` atoms."""
        if num_atoms != self.num_atoms:
            raise ValueError(
                f"the HostLayout describes {self.num_atoms} atoms in {self.num_graphs} molecules, "
                f"but the inputs have {num_atoms} atoms"
            )

    def covers(self, cutoff: Optional[float], max_num_neighbors: Optional[int]) -> bool:
        """Whether :func:`build_pairs` may use :meth:`all_pairs`: no cutoff, or molecules of at most
        :data:`ALL_PAIRS_MAX_ATOMS` atoms; and no ``max_num_neighbors`` that some atom could exceed."""
        if cutoff is not None and self.largest > ALL_PAIRS_MAX_ATOMS:
            return False
        return max_num_neighbors is None or max_num_neighbors >= self.largest - 1

    def window_range(self, cutoff: Optional[float]) -> Tuple[float, float]:
        """The distances whose Gaussians matter (Angstrom): the batch's range, capped at the cutoff
        (beyond it the filter is zero); ``(0, cutoff)`` or ``(0, inf)`` (every centre) without a range."""
        high = math.inf if cutoff is None else float(cutoff)
        if self.distance_range is None:
            return 0.0, high
        d_min, d_max = self.distance_range
        d_max = min(d_max, high)
        return min(d_min, d_max), d_max

    def check_all_pairs_memory(self, **estimate: Any) -> None:
        """:func:`pyg_schnet.graph.memory.check_all_pairs_memory_of` (keyword arguments after
        ``counts``) for this layout's molecules: on the host."""
        check_all_pairs_memory_of(self.counts, **estimate)


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


@torch.compiler.disable  # torch-cluster's kernel is opaque to torch.compile, its output size data-dependent
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
    layout: Optional[HostLayout] = None,
) -> Tensor:
    """Like :func:`build_graph`, but each unordered pair once (``[2, P]``, row 0 < row 1).

    Distances, Gaussian expansions and cfconv filters are symmetric, ``W(d_ij) = W(d_ji)``: computing
    them per pair and mirroring (:func:`mirror`) halves that work. ``build_graph`` is
    ``mirror(build_pairs(...))`` up to the order of the edges.

    With a :class:`HostLayout` of the batch, the all-pairs graph is built on the host, also under a
    cutoff for small molecules (:meth:`HostLayout.covers`; pairs beyond the cutoff then carry zero
    filters, see the module docstring); nothing reads the device.
    """
    if layout is not None and layout.covers(cutoff, max_num_neighbors):
        return layout.all_pairs(pos.device)
    if cutoff is None:
        pairs = full_pairs(batch)
    else:
        if layout is not None:
            largest = max(layout.largest, 1)
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
