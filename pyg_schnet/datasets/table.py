"""Molecules in columns (:class:`AtomsTable`), and the one place where parsed data is checked.

Every reader (QM9, MD17, ISO17) returns an :class:`AtomsTable` that also says where its molecules
came from (:attr:`AtomsTable.source`, :attr:`AtomsTable.origin`); :meth:`AtomsTable.validate`, which
:class:`~pyg_schnet.datasets.base.AtomsDataset` calls on every table before anything is written,
rejects physically absurd or corrupt input with a :class:`~.errors.RawFileError` that names the file
and the frame, row or molecule **in that file** (never a position in a shuffled mini-batch):

* atomic numbers outside ``1 .. MAX_ATOMIC_NUMBER`` (118, the known elements);
* non-finite values (NaN, +-inf) in any floating-point field: positions, forces, energies, QM9's
  15 properties;
* coordinates beyond ``+-MAX_ABS_POSITION`` (1e4 Angstrom): unit mistakes (metres, Bohr * 1e10) or
  corrupt files; both bounds are :mod:`pyg_schnet.validation`'s, shared with the model's input checks;
* two atoms of one molecule closer than :data:`MIN_ATOM_DISTANCE` (0.01 Angstrom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from pyg_schnet.datasets.errors import RawFileError
from pyg_schnet.validation import MAX_ABS_POSITION, MAX_ATOMIC_NUMBER

#: Closest two atoms of one molecule may be, in Angstrom. The shortest bond (H2) is 0.74 Angstrom and
#: nuclei repel far before 0.01 Angstrom, so no real geometry comes near; closer atoms are duplicated
#: atoms or a corrupt file, and at distance 0 the energy is not differentiable (training fails later,
#: naming only a mini-batch). 0.01 Angstrom is also ten times float32's spacing at the largest accepted
#: coordinate (2^-10 = 0.00098 Angstrom at 1e4), so atoms that pass stay distinct after conversion.
MIN_ATOM_DISTANCE = 0.01

#: Atoms per block when looking for coincident atoms (a few tens of MB of temporaries).
_ATOMS_PER_BLOCK = 1_000_000


def _values(row: Tensor) -> str:
    """``[3e+19, 0.582910, nan]``: a row's values with 6 significant digits (no float32 noise)."""
    return "[" + ", ".join(f"{float(v):.6g}" for v in row.reshape(-1)) + "]"


@dataclass
class AtomsTable:
    """Molecules in columns: the fast, collated form a parser returns.

    ``num_atoms[g]`` atoms belong to molecule ``g``; every tensor in ``atom_fields`` has
    ``num_atoms.sum()`` rows (molecule after molecule), every tensor in ``graph_fields`` has one
    row per molecule. Molecule ``g`` becomes a :class:`~torch_geometric.data.Data` whose atom
    fields are its block of rows and whose graph fields keep a leading dimension of 1 (so
    ``energy`` is ``[1]`` and QM9's ``y`` is ``[1, 15]``, and batches concatenate them).

    Where the molecules came from, for error messages:

    * ``source`` -- the file they were read from;
    * ``origin`` -- how that file names a molecule, a format string applied to ``origin_ids[g]``
      (``"frame {}"``, ``"row id {}"``); ``origin_ids`` defaults to the position in the table,
      which is the frame index for readers that keep the file's order;
    * ``field_names`` -- how the file calls a field (``{"pos": "key 'R'"}``; default ``'pos'``);
    * ``columns`` -- names of the columns of a 2-D graph field (QM9's 15 properties of ``y``).
    """

    num_atoms: Tensor
    atom_fields: Dict[str, Tensor]
    graph_fields: Dict[str, Tensor] = field(default_factory=dict)
    source: str = ""
    origin: str = "molecule {}"
    origin_ids: Optional[Tensor] = None
    field_names: Dict[str, str] = field(default_factory=dict)
    columns: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.num_atoms = torch.as_tensor(self.num_atoms, dtype=torch.long)
        if self.num_atoms.dim() != 1:
            raise ValueError(f"num_atoms must be 1-D, got shape {tuple(self.num_atoms.shape)}")
        if self.num_atoms.numel() and int(self.num_atoms.min()) < 1:
            raise ValueError("every molecule needs at least one atom")
        total = int(self.num_atoms.sum())
        for key, value in self.atom_fields.items():
            if value.size(0) != total:
                raise ValueError(f"atom field '{key}' has {value.size(0)} rows, expected {total}")
        for key, value in self.graph_fields.items():
            if value.size(0) != len(self):
                raise ValueError(f"graph field '{key}' has {value.size(0)} rows, expected {len(self)}")
        if self.origin_ids is not None:
            self.origin_ids = torch.as_tensor(self.origin_ids, dtype=torch.long)
            if self.origin_ids.shape != (len(self),):
                raise ValueError(f"origin_ids has shape {tuple(self.origin_ids.shape)}, expected ({len(self)},)")

    def __len__(self) -> int:
        return self.num_atoms.numel()

    @property
    def atom_offsets(self) -> Tensor:
        """``[G + 1]`` cumulative atom counts starting at 0."""
        return torch.cat([self.num_atoms.new_zeros(1), torch.cumsum(self.num_atoms, 0)])

    def get(self, g: int) -> Data:
        """Molecule ``g`` as a :class:`~torch_geometric.data.Data`."""
        offsets = self.atom_offsets
        start, stop = int(offsets[g]), int(offsets[g + 1])
        kwargs = {k: v[start:stop] for k, v in self.atom_fields.items()}
        kwargs.update({k: v[g : g + 1] for k, v in self.graph_fields.items()})
        return Data(**kwargs)

    def select(self, order: Union[Sequence[int], Tensor, np.ndarray]) -> "AtomsTable":
        """The molecules ``order[0], order[1], ...`` in that order (a reordering or a subset)."""
        order = torch.as_tensor(np.asarray(order), dtype=torch.long)
        counts = self.num_atoms[order]
        starts = self.atom_offsets[:-1][order]
        new_starts = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)[:-1]])
        atom_index = torch.repeat_interleave(starts - new_starts, counts) + torch.arange(int(counts.sum()))
        ids = self.origin_ids if self.origin_ids is not None else torch.arange(len(self))
        return AtomsTable(
            num_atoms=counts,
            atom_fields={k: v[atom_index] for k, v in self.atom_fields.items()},
            graph_fields={k: v[order] for k, v in self.graph_fields.items()},
            source=self.source,
            origin=self.origin,
            origin_ids=ids[order],
            field_names=dict(self.field_names),
            columns=dict(self.columns),
        )

    def collated(self) -> Tuple[Data, Dict[str, Tensor]]:
        """The ``(data, slices)`` pair :class:`~torch_geometric.data.InMemoryDataset` stores.

        Identical to ``InMemoryDataset.collate([self.get(g) for g in range(len(self))])`` but without
        building one Python object per molecule.
        """
        atom_slices = self.atom_offsets
        graph_slices = torch.arange(len(self) + 1)
        slices = {k: atom_slices for k in self.atom_fields}
        slices.update({k: graph_slices for k in self.graph_fields})
        data = Data(**self.atom_fields, **self.graph_fields)
        return data, slices

    # ------------------------------------------------------------------------------------------
    # Where a molecule came from
    # ------------------------------------------------------------------------------------------
    def where(self, g: int) -> str:
        """``"<source>: <origin of molecule g>"``, e.g. ``"raw/md17_ethanol.npz: frame 483"``."""
        origin_id = int(self.origin_ids[g]) if self.origin_ids is not None else g
        place = self.origin.format(origin_id)
        return f"{self.source}: {place}" if self.source else place

    def _name(self, key: str) -> str:
        return self.field_names.get(key, f"'{key}'")

    def _molecule_of_atom(self, atom: int) -> int:
        return int(torch.searchsorted(self.atom_offsets, torch.tensor(atom), right=True)) - 1

    def _atom_place(self, atom: int) -> Tuple[str, int]:
        """``(where(molecule), index of the atom within its molecule)`` for a row of the atom fields."""
        g = self._molecule_of_atom(atom)
        return self.where(g), atom - int(self.atom_offsets[g])

    # ------------------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------------------
    def validate(self, min_distance: float = MIN_ATOM_DISTANCE) -> None:
        """Reject corrupt or physically absurd molecules (see the module docstring).

        Checks, in this order: atomic numbers ``z`` in ``1 .. MAX_ATOMIC_NUMBER``; every floating-point
        field finite; every coordinate of ``pos`` within ``+-MAX_ABS_POSITION`` Angstrom; no two atoms of
        one molecule closer than ``min_distance`` Angstrom.

        Raises:
            RawFileError: naming :attr:`source`, the molecule as the file names it (:meth:`where`), the
                field and the atom (0-based within the molecule) of the first fault found.
        """
        z = self.atom_fields.get("z")
        if z is not None:
            if z.dtype.is_floating_point or z.dtype == torch.bool or z.dim() != 1:
                raise RawFileError(
                    f"{self.source}: {self._name('z')} must be a 1-D integer array of atomic numbers, got {z.dtype}"
                )
            bad = (z < 1) | (z > MAX_ATOMIC_NUMBER)
            if bool(bad.any()):
                atom = int(bad.nonzero()[0])
                where, local = self._atom_place(atom)
                raise RawFileError(
                    f"{where}: {self._name('z')} holds atomic number {int(z[atom])} at atom "
                    f"{local}, outside 1..{MAX_ATOMIC_NUMBER} (the known elements)"
                )
        for key, value in self.atom_fields.items():
            if not value.dtype.is_floating_point:
                continue
            finite = torch.isfinite(value.reshape(value.size(0), -1)).all(dim=1)
            if not bool(finite.all()):
                atom = int((~finite).nonzero()[0])
                where, local = self._atom_place(atom)
                raise RawFileError(f"{where}: non-finite {self._name(key)} at atom {local} ({_values(value[atom])})")
        for key, value in self.graph_fields.items():
            if not value.dtype.is_floating_point:
                continue
            flat = value.reshape(value.size(0), -1)
            finite = torch.isfinite(flat)
            if not bool(finite.all()):
                g, column = (int(i) for i in (~finite).nonzero()[0])
                names = self.columns.get(key)
                what = self._name(key)
                if names is not None and column < len(names):
                    what += f" {names[column]}"
                elif flat.size(1) > 1:
                    what += f" column {column}"
                raise RawFileError(f"{self.where(g)}: non-finite {what} ({float(flat[g, column])})")
        pos = self.atom_fields.get("pos")
        if pos is None:
            return
        far = (pos.abs() > MAX_ABS_POSITION).any(dim=-1)
        if bool(far.any()):
            atom = int(far.nonzero()[0])
            where, local = self._atom_place(atom)
            raise RawFileError(
                f"{where}: atom {local} is at {_values(pos[atom])} Angstrom in "
                f"{self._name('pos')}, beyond +-{MAX_ABS_POSITION:g} Angstrom (a unit mistake or a corrupt file)"
            )
        pair = self.closest_pair_below(min_distance)
        if pair is not None:
            g, i, j, distance = pair
            raise RawFileError(
                f"{self.where(g)}: atoms {i} and {j} are {distance:.3g} Angstrom apart in {self._name('pos')}, "
                f"closer than {min_distance:g} Angstrom (coincident or duplicated atoms)"
            )

    def closest_pair_below(self, min_distance: float) -> Optional[Tuple[int, int, int, float]]:
        """The first molecule (table order) with two atoms closer than ``min_distance`` Angstrom.

        Returns ``(molecule, atom i, atom j, distance)`` with atoms numbered within the molecule (the
        first such pair in ``(i, j)`` order), or ``None``. Molecules are grouped by atom count and
        scanned in blocks, one atom against the later ones at a time (about 0.5 s per 100,000
        molecules of 19 atoms on one core).
        """
        pos = self.atom_fields["pos"]
        offsets = self.atom_offsets[:-1]
        threshold = float(min_distance) ** 2
        first: Optional[int] = None
        for n in torch.unique(self.num_atoms).tolist():
            if n < 2:
                continue
            molecules = (self.num_atoms == n).nonzero().flatten()
            if first is not None:
                molecules = molecules[molecules < first]
            per_block = max(1, _ATOMS_PER_BLOCK // n)
            for start in range(0, molecules.numel(), per_block):
                block = molecules[start : start + per_block]
                coords = pos[offsets[block].unsqueeze(1) + torch.arange(n)]  # [b, n, 3]
                close = torch.zeros(block.numel(), dtype=torch.bool)
                for k in range(n - 1):
                    squared = (coords[:, k + 1 :] - coords[:, k : k + 1]).pow(2).sum(-1)
                    close |= (squared < threshold).any(dim=1)
                if bool(close.any()):
                    first = int(block[close.nonzero()[0]])
                    break
        if first is None:
            return None
        start = int(offsets[first])
        coords = pos[start : start + int(self.num_atoms[first])].to(torch.float64)
        i, j = torch.triu_indices(coords.size(0), coords.size(0), 1)
        distances = (coords[i] - coords[j]).norm(dim=-1)
        below = distances.pow(2) < threshold
        # float32 found it; float64 agrees except for a pair on the bound, then report the closest
        p = int(below.nonzero()[0]) if bool(below.any()) else int(distances.argmin())
        return first, int(i[p]), int(j[p]), float(distances[p])
