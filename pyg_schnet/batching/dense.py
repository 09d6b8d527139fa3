"""Dense (padded) batches: molecules as rows of ``[B, N_max]`` tensors with a mask of real atoms.

PyG batches molecules *sparsely*: the atoms of all molecules are stacked into one ``[N, ...]`` tensor
and a ``batch`` vector says which molecule each atom belongs to. A *dense* batch pads every molecule
to the size ``N_max`` of the largest one:

- ``z`` ``[B, N_max]`` atomic numbers, ``0`` on padding slots;
- ``pos`` ``[B, N_max, 3]`` positions in Angstrom, ``0`` on padding slots;
- ``mask`` ``[B, N_max]`` ``True`` for real atoms.

Only molecules: a batch with a periodic structure (a ``pbc`` field with a ``True``) is refused.

Real atoms keep their order: row ``b`` holds the atoms of molecule ``b`` in the order of the sparse
batch, left-aligned, so ``values[mask]`` (:func:`to_sparse`) gives back the sparse ``[N, ...]`` layout.
:meth:`pyg_schnet.SchNet.forward_dense` runs the model on this layout.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.validation import check_inputs, inputs_trusted


class DenseBatch(NamedTuple):
    """A padded batch of molecules (see the module docstring for the layout)."""

    z: Tensor
    pos: Tensor
    mask: Tensor


def dense_slots(layout: HostLayout, max_num_atoms: Optional[int] = None) -> Tensor:
    """The flat slot ``b * N_max + k`` of each atom ``[N]`` (CPU) of a batch padded to ``N_max`` slots
    (default: the largest molecule), computed on the host from its
    :class:`~pyg_schnet.graph.pairs.HostLayout`: the index :func:`to_sparse` gathers with."""
    width = layout.largest if max_num_atoms is None else int(max_num_atoms)
    if layout.largest > width:
        mol = layout.counts.index(layout.largest)
        raise ValueError(
            f"molecule {mol} has {layout.largest} atoms, more than max_num_atoms={width} (atoms are never dropped)"
        )
    # a copy: the remembered array must not be shared with a tensor someone may write to
    return torch.from_numpy(_slots(layout.counts, width).copy())


@functools.lru_cache(maxsize=16)
def _slots(counts: Tuple[int, ...], width: int) -> np.ndarray:
    """:func:`dense_slots` of molecules of ``counts`` atoms in rows of ``width`` slots, remembered: a
    training step pads the batch and gathers its forces back with the same slots."""
    sizes = np.asarray(counts, dtype=np.int64)
    graph = np.repeat(np.arange(len(counts), dtype=np.int64), sizes)
    local = np.arange(int(sizes.sum()), dtype=np.int64) - (np.cumsum(sizes) - sizes)[graph]
    return graph * width + local


def _pad_from_layout(z: Tensor, pos: Tensor, layout: HostLayout, max_num_atoms: Optional[int]) -> DenseBatch:
    """:func:`to_dense_atoms` with the slots computed on the host from ``layout`` (no device read)."""
    width = layout.largest if max_num_atoms is None else int(max_num_atoms)
    slots = dense_slots(layout, width)
    mask = torch.zeros(layout.num_graphs * width, dtype=torch.bool)
    mask[slots] = True  # on the host
    index = slots.to(z.device, non_blocking=True)
    rows = layout.num_graphs * width
    z_dense = z.new_zeros(rows).index_copy(0, index, z).view(layout.num_graphs, width)
    pos_dense = pos.new_zeros((rows, 3)).index_copy(0, index, pos).view(layout.num_graphs, width, 3)
    mask_dense = mask.to(z.device, non_blocking=True).view(layout.num_graphs, width)
    return DenseBatch(z_dense, pos_dense, mask_dense)


def to_dense_atoms(
    z: Tensor,
    pos: Tensor,
    batch: Optional[Tensor] = None,
    batch_size: Optional[int] = None,
    max_num_atoms: Optional[int] = None,
    layout: Optional[HostLayout] = None,
) -> DenseBatch:
    """Pad the sparse atoms ``z`` ``[N]``, ``pos`` ``[N, 3]`` of a batch into a :class:`DenseBatch`.

    Args:
        z: atomic numbers ``[N]`` (``>= 1``: ``0`` marks padding in the dense layout).
        pos: positions ``[N, 3]`` in Angstrom.
        batch: sorted molecule index of each atom ``[N]`` (``None``: one molecule).
        batch_size: number of molecules ``B`` (default ``batch.max() + 1``); molecules without atoms
            become rows with an all-``False`` mask.
        max_num_atoms: width ``N_max`` of the padded rows (default: the largest molecule). A
            molecule with more atoms raises :class:`ValueError` (atoms are never dropped).
        layout: the batch's sizes known on the host (:class:`~pyg_schnet.graph.pairs.HostLayout`,
            which then sets ``B``): the slots are computed on the host and nothing is read from the device
            inside :func:`pyg_schnet.validation.trusted_inputs` (outside it the checks below read it once).

    Raises:
        ValueError: mismatched shapes, an unsorted batch vector, atomic numbers below 1 or
            non-finite positions, naming the atom at fault.
    """
    if layout is not None:
        layout.check_atoms(z.size(0) if z.dim() else 0)
    integer_z = z.dim() == 1 and z.numel() and not z.dtype.is_floating_point
    if integer_z and inputs_trusted():  # shapes and dtypes only (pyg_schnet.validation.trusted_inputs)
        batch = check_inputs(z, pos, batch, max_z=MAX_DENSE_Z)
    else:
        if integer_z and int(z.min()) < 1:
            atom = int((z < 1).nonzero()[0])
            where = f"atom {atom}" if batch is None else f"atom {atom} (molecule {int(batch[atom])})"
            raise ValueError(
                f"{where} has atomic number {int(z[atom])}; atomic numbers must be >= 1 "
                "(0 marks padding in a dense batch)"
            )
        max_z = int(z.max()) + 1 if integer_z else 2
        batch = check_inputs(z, pos, batch, max_z=max_z)
    if layout is not None:
        return _pad_from_layout(z, pos, layout, max_num_atoms)
    if max_num_atoms is not None and batch.numel():
        largest = int(torch.bincount(batch).max())
        if largest > max_num_atoms:
            mol = int(torch.bincount(batch).argmax())
            raise ValueError(
                f"molecule {mol} has {largest} atoms, more than max_num_atoms={max_num_atoms} (atoms are never dropped)"
            )
    z_dense, mask = to_dense_batch(z, batch, fill_value=0, max_num_nodes=max_num_atoms, batch_size=batch_size)
    pos_dense, _ = to_dense_batch(pos, batch, fill_value=0.0, max_num_nodes=max_num_atoms, batch_size=batch_size)
    return DenseBatch(z_dense, pos_dense, mask)


#: Atomic numbers accepted by :func:`to_dense_atoms` with a layout (any element; the model checks its
#: own embedding's range).
MAX_DENSE_Z = 1 << 62


def to_dense(data, max_num_atoms: Optional[int] = None, layout: Optional[HostLayout] = None) -> DenseBatch:
    """Turn a PyG :class:`~torch_geometric.data.Batch` (or a single ``Data``) into a :class:`DenseBatch`.

    Reads ``data.z``, ``data.pos`` and ``data.batch`` (absent for a single molecule); the number of
    rows is ``data.num_graphs``, so molecules without atoms keep their row (all-``False`` mask).

    Args:
        data: a batch of molecules with fields ``z`` ``[N]`` and ``pos`` ``[N, 3]`` (Angstrom).
        max_num_atoms: width of the padded rows (default: the largest molecule).
        layout: see :func:`to_dense_atoms`.
    """
    for field in ("z", "pos"):
        if getattr(data, field, None) is None:
            raise ValueError(f"to_dense needs the field '{field}' on the batch; it has {sorted(data.keys())}")
    if is_periodic(data):
        g = int(data.pbc.reshape(-1, 3).any(dim=1).nonzero()[0])
        raise ValueError(
            f"structure {g} of the batch is periodic (pbc {data.pbc.reshape(-1, 3)[g].tolist()}): the dense "
            "(padded) path handles molecules only; use sparse batching for periodic structures"
        )
    batch = getattr(data, "batch", None)
    batch_size = int(data.num_graphs) if batch is not None and hasattr(data, "num_graphs") else None
    return to_dense_atoms(data.z, data.pos, batch, batch_size=batch_size, max_num_atoms=max_num_atoms, layout=layout)


def is_periodic(data) -> bool:
    """True when a PyG ``Data``/``Batch`` carries a ``pbc`` field with a periodic axis."""
    pbc = getattr(data, "pbc", None)
    return pbc is not None and bool(torch.as_tensor(pbc).any())


def to_sparse(values: Tensor, mask: Tensor, index: Optional[Tensor] = None) -> Tensor:
    """Inverse of the padding: per-slot ``values`` ``[B, N_max, ...]`` -> per-atom ``[N, ...]``.

    The real atoms come out in the order of the sparse batch (row by row, left to right), e.g.
    dense forces ``[B, N_max, 3]`` -> ``[N, 3]`` aligned with ``batch.pos``. ``index``: the flat
    slots of the atoms (:func:`dense_slots`, on the device of ``values``), which makes it a gather of a
    known size instead of a boolean selection (no host synchronisation).
    """
    if mask.dtype != torch.bool or values.shape[: mask.dim()] != mask.shape:
        raise ValueError(
            f"mask must be a bool tensor matching the leading dimensions of values: "
            f"values {tuple(values.shape)}, mask {tuple(mask.shape)} {mask.dtype}"
        )
    if index is not None:
        return values.flatten(0, 1).index_select(0, index)
    return values[mask]
