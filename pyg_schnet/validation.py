"""Checks on model inputs: bad input raises a clear error naming the atom at fault, never NaN."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

#: Largest accepted absolute Cartesian coordinate, in Angstrom. Real molecules and simulation cells
#: are far smaller; coordinates beyond this are unit mistakes (Bohr * 1e10, metres) or corrupt files,
#: and float32 distances between such positions lose all precision (at 3e19 they overflow).
MAX_ABS_POSITION = 1.0e4
#: Largest atomic number of a known element (oganesson).
MAX_ATOMIC_NUMBER = 118


def _where(batch: Tensor, atom: int) -> str:
    return f"atom {atom} (molecule {int(batch[atom])})"


def check_inputs(z: Tensor, pos: Tensor, batch: Optional[Tensor], max_z: int) -> Tensor:
    """Validate ``z`` ``[N]``, ``pos`` ``[N, 3]`` and ``batch`` ``[N]``; return the batch vector.

    Raises :class:`ValueError` for mismatched shapes, an unsorted or negative batch vector, non-finite
    positions and atomic numbers outside ``1 .. max_z - 1``, each time naming the first atom at fault.
    """
    if z.dim() != 1 or z.dtype.is_floating_point or z.dtype == torch.bool:
        raise ValueError(f"z must be a 1-D integer tensor of atomic numbers, got shape {tuple(z.shape)} and {z.dtype}")
    if pos.dim() != 2 or pos.size(-1) != 3:
        raise ValueError(f"pos must have shape [num_atoms, 3], got {tuple(pos.shape)}")
    if not pos.dtype.is_floating_point:
        raise ValueError(f"pos must be a floating-point tensor, got {pos.dtype}")
    if pos.size(0) != z.size(0):
        raise ValueError(f"z has {z.size(0)} atoms but pos has {pos.size(0)}")
    if batch is None:
        batch = torch.zeros_like(z)
    else:
        if batch.dim() != 1 or batch.dtype.is_floating_point:
            raise ValueError(f"batch must be a 1-D integer tensor, got shape {tuple(batch.shape)} and {batch.dtype}")
        if batch.size(0) != z.size(0):
            raise ValueError(f"batch has {batch.size(0)} entries but z has {z.size(0)} atoms")
        if batch.numel():
            if int(batch.min()) < 0:
                atom = int((batch < 0).nonzero()[0])
                raise ValueError(f"batch is negative at atom {atom}")
            step = batch[1:] - batch[:-1]
            if bool((step < 0).any()):
                atom = int((step < 0).nonzero()[0]) + 1
                raise ValueError(
                    f"batch must be sorted (atoms of one molecule contiguous, molecules in order): "
                    f"atom {atom} has molecule {int(batch[atom])} after molecule {int(batch[atom - 1])}"
                )
    bad_z = (z < 1) | (z >= max_z)
    if bool(bad_z.any()):
        atom = int(bad_z.nonzero()[0])
        raise ValueError(f"{_where(batch, atom)} has atomic number {int(z[atom])}, outside 1..{max_z - 1} of the embedding")
    finite = torch.isfinite(pos).all(dim=-1)
    if not bool(finite.all()):
        atom = int((~finite).nonzero()[0])
        raise ValueError(f"{_where(batch, atom)} has a non-finite position {pos[atom].tolist()}")
    return batch


def check_distinct_positions(distances: Tensor, edge_index: Tensor, batch: Tensor) -> None:
    """Raise :class:`ValueError` when two distinct atoms of a molecule sit at the same position."""
    same = distances == 0
    if bool(same.any()):
        e = int(same.nonzero()[0])
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        raise ValueError(
            f"atoms {min(i, j)} and {max(i, j)} of molecule {int(batch[i])} are at the same position "
            "(distance 0): the energy is not differentiable there"
        )
