"""MD17 (Chmiela et al., Sci. Adv. 3, e1603015, 2017) and the revised rMD17 from their npz files.

* MD17: ``root/raw/md17_<name>.npz`` as published on the sGDML data page
  (``http://www.quantum-machine.org/gdml/data/npz/``), keys ``R`` (M, n, 3) Angstrom, ``z`` (n,),
  ``E`` (M, 1) kcal/mol and ``F`` (M, n, 3) kcal/mol/Angstrom (DFT: PBE+vdW-TS). Benzene is
  ``md17_benzene2017.npz``, salicylic acid ``md17_salicylic.npz``.
* rMD17 (Christensen & von Lilienfeld, 2020; ``"revised <name>"``): the archive ``rmd17.tar.bz2``
  unpacks to ``root/raw/rmd17/npz_data/rmd17_<name>.npz`` with keys ``nuclear_charges`` (n,),
  ``coords`` (M, n, 3) Angstrom, ``energies`` (M,) kcal/mol and ``forces`` (M, n, 3)
  kcal/mol/Angstrom (PBE/def2-SVP, about 100,000 frames per molecule). The archive also holds the
  five official splits ``rmd17/splits/index_train_0K.csv`` and ``index_test_0K.csv`` (K = 1..5;
  1,000 frame indices each, 0-based positions in every molecule's npz, one integer per line), unpacked
  with the data into ``root/raw/rmd17/splits`` and read by :meth:`MD17.official_split`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pyg_schnet.datasets.base import AtomsDataset, AtomsTable, DownloadVerificationError, RawFileError, RemoteFile
from pyg_schnet.datasets.iso17 import read_id_list

PathLike = Union[str, "os.PathLike[str]"]

GDML_URL = "http://www.quantum-machine.org/gdml/data/npz/"
RMD17_URL = "https://figshare.com/ndownloader/files/23950376"
RMD17_ARCHIVE = "rmd17.tar.bz2"

#: The eight molecules of Table 2: canonical name -> (npz file, published number of frames).
MD17_FILES: Dict[str, Tuple[str, int]] = {
    "benzene": ("md17_benzene2017.npz", 627_983),
    "toluene": ("md17_toluene.npz", 442_790),
    "malonaldehyde": ("md17_malonaldehyde.npz", 993_237),
    "salicylic_acid": ("md17_salicylic.npz", 320_231),
    "aspirin": ("md17_aspirin.npz", 211_762),
    "ethanol": ("md17_ethanol.npz", 555_092),
    "uracil": ("md17_uracil.npz", 133_770),
    "naphthalene": ("md17_naphthalene.npz", 326_250),
}
#: rMD17 molecules: canonical name -> npz file inside ``rmd17/npz_data``.
RMD17_FILES: Dict[str, str] = {
    "aspirin": "rmd17_aspirin.npz",
    "azobenzene": "rmd17_azobenzene.npz",
    "benzene": "rmd17_benzene.npz",
    "ethanol": "rmd17_ethanol.npz",
    "malonaldehyde": "rmd17_malonaldehyde.npz",
    "naphthalene": "rmd17_naphthalene.npz",
    "paracetamol": "rmd17_paracetamol.npz",
    "salicylic_acid": "rmd17_salicylic.npz",
    "toluene": "rmd17_toluene.npz",
    "uracil": "rmd17_uracil.npz",
}
#: The official rMD17 splits: K = 1..5, files ``rmd17/splits/index_{train,test}_0K.csv`` under ``root/raw``.
RMD17_SPLITS: Tuple[int, ...] = (1, 2, 3, 4, 5)
RMD17_SPLIT_DIR = os.path.join("rmd17", "splits")


def rmd17_split_files(k: int) -> Tuple[str, str]:
    """``(train, test)`` paths of official split ``k`` relative to ``root/raw``; ``k`` outside 1..5 is refused."""
    if isinstance(k, bool) or not isinstance(k, int) or k not in RMD17_SPLITS:
        raise ValueError(f"rMD17 official split must be one of {list(RMD17_SPLITS)}, got {k!r}")
    return tuple(os.path.join(RMD17_SPLIT_DIR, f"index_{part}_{k:02d}.csv") for part in ("train", "test"))  # type: ignore[return-value]


#: npz keys of each layout: (atomic numbers, positions, energies, forces).
MD17_KEYS: Tuple[str, str, str, str] = ("z", "R", "E", "F")
RMD17_KEYS: Tuple[str, str, str, str] = ("nuclear_charges", "coords", "energies", "forces")
_UNIT_KEYS = {"e_unit": ("kcal/mol",), "r_unit": ("ang", "angstrom", "a")}


def canonical_molecule(name: str) -> Tuple[str, bool]:
    """``("salicylic_acid", False)`` for ``"salicylic acid"``; ``(name, True)`` for ``"revised <name>"``."""
    key = " ".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())
    revised = key.startswith("revised ")
    if revised:
        key = key[len("revised ") :]
    if key == "salicylic":
        key = "salicylic acid"
    key = key.replace(" ", "_")
    table = RMD17_FILES if revised else MD17_FILES
    if key not in table:
        choices = sorted(MD17_FILES) + [f"revised {m}" for m in sorted(RMD17_FILES)]
        raise ValueError(f"unknown MD17 molecule {name!r}; choose from {choices}")
    return key, revised


_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first bytes (one with members, an empty one)
_NPY_MAGIC = b"\x93NUMPY"


def _check_npz_signature(path: str) -> None:
    """Refuse a file that is not a zip archive before numpy guesses (it would call text a pickle)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise RawFileError(f"{path}: cannot be read: {exc}") from exc
    if head.startswith(_NPY_MAGIC):
        raise RawFileError(f"{path}: a single .npy array, not an .npz archive of named arrays (renamed .npy file?)")
    if not head.startswith(_NPZ_MAGIC):
        what = "an empty file" if not head else f"a file starting with {head!r}"
        raise RawFileError(f"{path}: not an npz file (a zip archive of named arrays); it is {what}")


def read_md17_npz(path: PathLike, keys: Tuple[str, str, str, str] = MD17_KEYS) -> AtomsTable:
    """Read one MD17-style npz file into an :class:`AtomsTable` (one molecule per frame).

    Checks that the file is an npz archive, the keys, shapes (``z`` (n,), positions and forces
    (M, n, 3), energies (M,) or (M, 1)), dtypes and, where the file states them, the units; every
    error names the file and key. The table names each frame by its index in the file, so that
    :meth:`AtomsTable.validate` (atomic numbers, finiteness, coordinate bound, coincident atoms)
    names the file, the key and the frame.
    """
    path = os.fspath(path)
    z_key, r_key, e_key, f_key = keys
    _check_npz_signature(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = set(npz.files)
            missing = [k for k in keys if k not in present]
            if missing:
                raise RawFileError(f"{path}: missing key(s) {missing}; the file has {sorted(present)}")
            for unit_key, accepted in _UNIT_KEYS.items():
                if unit_key in present:
                    unit = str(npz[unit_key]).strip()
                    if unit.lower() not in accepted:
                        raise RawFileError(
                            f"{path}: key '{unit_key}' says {unit!r}; expected {accepted[0]!r} "
                            "(units are never converted silently)"
                        )
            arrays = {}
            for key in keys:
                try:
                    arrays[key] = npz[key]
                except (ValueError, zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise RawFileError(f"{path}: key '{key}' cannot be read: {exc}") from exc
    except RawFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise RawFileError(f"{path}: not a readable npz file: {exc}") from exc
    z, pos, energy, force = (arrays[k] for k in keys)

    if z.ndim != 1 or z.size == 0 or not np.issubdtype(z.dtype, np.integer):
        raise RawFileError(
            f"{path}: key '{z_key}' must be a non-empty 1-D integer array, got shape {z.shape} dtype {z.dtype}"
        )
    n = z.shape[0]
    if pos.ndim != 3 or pos.shape[1:] != (n, 3):
        raise RawFileError(
            f"{path}: key '{r_key}' has shape {pos.shape}, expected (M, {n}, 3) for {n} atoms in '{z_key}'"
        )
    frames = pos.shape[0]
    if frames == 0:
        raise RawFileError(f"{path}: key '{r_key}' holds no frames")
    if energy.shape not in ((frames,), (frames, 1)):
        raise RawFileError(f"{path}: key '{e_key}' has shape {energy.shape}, expected ({frames},) or ({frames}, 1)")
    if force.shape != (frames, n, 3):
        raise RawFileError(f"{path}: key '{f_key}' has shape {force.shape}, expected ({frames}, {n}, 3)")
    for key, arr in ((r_key, pos), (e_key, energy), (f_key, force)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise RawFileError(f"{path}: key '{key}' has dtype {arr.dtype}, expected floating point")

    z_all = torch.from_numpy(np.ascontiguousarray(z, dtype=np.int64)).repeat(frames)
    return AtomsTable(
        num_atoms=torch.full((frames,), n, dtype=torch.long),
        atom_fields={
            "z": z_all,
            "pos": torch.from_numpy(np.ascontiguousarray(pos.reshape(-1, 3), dtype=np.float32)),
            "force": torch.from_numpy(np.ascontiguousarray(force.reshape(-1, 3), dtype=np.float32)),
        },
        graph_fields={"energy": torch.from_numpy(np.ascontiguousarray(energy.reshape(frames), dtype=np.float64))},
        source=path,
        origin="frame {}",
        field_names={
            "z": f"key '{z_key}'",
            "pos": f"key '{r_key}'",
            "energy": f"key '{e_key}'",
            "force": f"key '{f_key}'",
        },
    )


class MD17(AtomsDataset):
    r"""One MD17 molecular dynamics trajectory (Table 2 of the paper), or its rMD17 recomputation.

    Each frame is a :class:`~torch_geometric.data.Data` with ``z`` ``[n]`` long, ``pos``
    ``[n, 3]`` float32 (Angstrom), ``energy`` ``[1]`` float64 (kcal/mol; float64 because absolute
    energies near -97,000 kcal/mol lose about 0.004 kcal/mol in float32) and ``force`` ``[n, 3]``
    float32 (kcal/mol/Angstrom) -- the units the paper reports, so no conversion is needed.

    Args:
        root: folder with ``raw/md17_<file>.npz`` (or ``raw/rmd17/npz_data/rmd17_<file>.npz``).
        molecule: ``benzene``, ``toluene``, ``malonaldehyde``, ``salicylic_acid`` (or
            ``"salicylic acid"``), ``aspirin``, ``ethanol``, ``uracil``, ``naphthalene``; or
            ``"revised <name>"`` for rMD17 (also ``paracetamol`` and ``azobenzene``).
    """

    energy_unit = "kcal/mol"
    force_unit = "kcal/mol/Angstrom"
    molecules: Tuple[str, ...] = tuple(MD17_FILES)
    revised_molecules: Tuple[str, ...] = tuple(RMD17_FILES)

    def __init__(
        self,
        root: PathLike,
        molecule: str,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        pre_filter: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        self.molecule, self.revised = canonical_molecule(molecule)
        super().__init__(root, transform, pre_transform, pre_filter, force_reload=force_reload, log=log)

    @staticmethod
    def raw_file_for(molecule: str) -> str:
        """The path under ``root/raw`` this class reads for ``molecule`` (``"revised <name>"`` for rMD17)."""
        key, revised = canonical_molecule(molecule)
        return os.path.join("rmd17", "npz_data", RMD17_FILES[key]) if revised else MD17_FILES[key][0]

    @property
    def raw_file_names(self) -> List[str]:
        if self.revised:
            return [os.path.join("rmd17", "npz_data", RMD17_FILES[self.molecule])]
        return [MD17_FILES[self.molecule][0]]

    @property
    def remote_files(self) -> Sequence[RemoteFile]:
        if self.revised:
            provides = tuple(os.path.join("rmd17", "npz_data", f) for f in RMD17_FILES.values())
            provides += tuple(name for k in RMD17_SPLITS for name in rmd17_split_files(k))
            return (RemoteFile(RMD17_URL, RMD17_ARCHIVE, provides=provides, extract=True),)
        filename = MD17_FILES[self.molecule][0]
        return (RemoteFile(GDML_URL + filename, filename),)

    @property
    def processed_stem(self) -> str:
        return f"{'rmd17' if self.revised else 'md17'}_{self.molecule}"

    @property
    def npz_keys(self) -> Tuple[str, str, str, str]:
        return RMD17_KEYS if self.revised else MD17_KEYS

    def verify_download(self, remote: RemoteFile, path: Path) -> None:
        super().verify_download(remote, path)
        if not remote.extract:
            table = read_md17_npz(path, self.npz_keys)
            expected = MD17_FILES[self.molecule][1]
            if len(table) != expected:
                raise DownloadVerificationError(
                    f"{remote.filename} from {remote.url} has {len(table)} frames, the published file {expected}"
                )

    def read_raw(self) -> AtomsTable:
        return read_md17_npz(self.raw_paths[0], self.npz_keys)

    # ------------------------------------------------------------------------------------
    def official_split_paths(self, k: int) -> Tuple[Path, Path]:
        """``root/raw/rmd17/splits/index_train_0K.csv`` and ``index_test_0K.csv`` of official split ``k``."""
        if not self.revised:
            raise ValueError(
                f"official splits exist for rMD17 only ('revised {self.molecule}'); MD17 {self.molecule!r} "
                "has none: use random_split()"
            )
        train, test = rmd17_split_files(k)
        return Path(self.raw_dir) / train, Path(self.raw_dir) / test

    def official_split(self, k: int) -> Tuple[Tensor, Tensor]:
        """The training and test frames of rMD17's official split ``k`` (K = 1..5), as positions in this data set.

        The rMD17 protocol (Christensen & von Lilienfeld, 2020) trains on the 1,000 frames of
        ``index_train_0K.csv`` and tests on the 1,000 of ``index_test_0K.csv``; the indices are
        0-based frame positions in the molecule's npz (the same files serve all ten molecules). Every
        index must be an integer inside ``0..len(self) - 1``, none may repeat and the two lists must not
        overlap; each error names the file (and the line). A validation set for early stopping is not
        part of the published split: :mod:`pyg_schnet.experiments.protocols.md17` draws it, seeded,
        from the frames in neither list, so that training and testing use exactly the published frames.

        Returns:
            ``(train_idx, test_idx)``, ``torch.long`` tensors in file order, usable as ``dataset[train_idx]``.

        Raises:
            ValueError: ``k`` outside 1..5, or a non-revised MD17 data set.
            FileNotFoundError: a split file is absent (names it and the archive it comes from).
            RawFileError: a malformed file, an index out of range, a repeated index, an overlap.
        """
        paths = self.official_split_paths(k)
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise FileNotFoundError(
                f"rMD17 official split {k}: {', '.join(absent)} not found; the files come with the archive "
                f"{RMD17_URL} ({RMD17_ARCHIVE}): unpack it into {self.raw_dir} (rmd17/splits/...)"
            )
        if self._indices is not None:
            raise ValueError("official_split() needs the whole data set, not a subset of it")
        parts = []
        for path in paths:
            seen: Dict[int, int] = {}
            for line_no, index in enumerate(read_id_list(path), 1):
                if not 0 <= index < len(self):
                    raise RawFileError(
                        f"{path}: index {index} (entry {line_no}) is outside 0..{len(self) - 1}, the frames of "
                        f"{self.raw_paths[0]}"
                    )
                if index in seen:
                    raise RawFileError(f"{path}: index {index} appears twice (entries {seen[index]} and {line_no})")
                seen[index] = line_no
            parts.append(torch.tensor(list(seen), dtype=torch.long))
        train_idx, test_idx = parts
        shared = sorted(set(train_idx.tolist()) & set(test_idx.tolist()))
        if shared:
            raise RawFileError(
                f"{paths[0]} and {paths[1]} share {len(shared)} index(es) (first {shared[:5]}): training and "
                "test frames must differ"
            )
        return train_idx, test_idx

    def processing_summary(self) -> Dict[str, object]:
        return {"molecule": self.molecule, "revised": self.revised}

    def __repr__(self) -> str:
        name = f"revised {self.molecule}" if self.revised else self.molecule
        return f"{self.__class__.__name__}({len(self)}, molecule={name!r})"
