"""MD22 (Chmiela et al., Sci. Adv. 9, eadf0873, 2023): seven large molecules and complexes from their npz files.

``root/raw/md22_<name>.npz`` as published on the sGDML data page
(``http://www.quantum-machine.org/gdml/repo/datasets/``), in MD17's layout: keys ``R`` (M, n, 3)
Angstrom, ``z`` (n,), ``E`` (M, 1) kcal/mol and ``F`` (M, n, 3) kcal/mol/Angstrom (DFT: PBE+MBD),
plus the scalar strings ``name``, ``theory``, ``e_unit``, ``r_unit`` (checked when present: a file that
states other units is refused, never converted silently). The files are read by
:func:`pyg_schnet.datasets.md17.read_md17_npz`.

Checksums: the sGDML page publishes neither checksums nor byte sizes, so none is written here (none
is invented). A download is verified by its complete transfer (``Content-Length``) and by the
published number of frames (:data:`MD22_FILES`); the sha256 of the raw file is recorded in the
processed file's build record on first processing (and in every run's ``results.json``), and a
raw file whose bytes change later rebuilds the data set, with a message saying so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from pyg_schnet.datasets.base import AtomsDataset, AtomsTable, DownloadVerificationError, RemoteFile
from pyg_schnet.datasets.md17 import MD17_KEYS, read_md17_npz

PathLike = Union[str, "os.PathLike[str]"]

MD22_URL = "http://www.quantum-machine.org/gdml/repo/datasets/"

#: The seven MD22 systems: canonical name -> (npz file, published number of frames).
MD22_FILES: Dict[str, Tuple[str, int]] = {
    "Ac-Ala3-NHMe": ("md22_Ac-Ala3-NHMe.npz", 85_109),
    "DHA": ("md22_DHA.npz", 69_753),
    "stachyose": ("md22_stachyose.npz", 27_272),
    "AT-AT": ("md22_AT-AT.npz", 20_001),
    "AT-AT-CG-CG": ("md22_AT-AT-CG-CG.npz", 10_153),
    "buckyball-catcher": ("md22_buckyball-catcher.npz", 6_102),
    "double-walled_nanotube": ("md22_double-walled_nanotube.npz", 5_032),
}


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).strip().lower() if ch.isalnum())


_ALIASES: Dict[str, str] = {_key(name): name for name in MD22_FILES}
_ALIASES.update({_key("tetrapeptide"): "Ac-Ala3-NHMe", _key("docosahexaenoic acid"): "DHA"})
_ALIASES.update({_key("dw nanotube"): "double-walled_nanotube", _key("buckyball catcher"): "buckyball-catcher"})


def canonical_md22_molecule(name: str) -> str:
    """The canonical MD22 name for ``name`` (case, spaces, ``-`` and ``_`` do not matter:
    ``"ac_ala3_nhme"`` -> ``"Ac-Ala3-NHMe"``); an unknown name lists the seven."""
    key = _ALIASES.get(_key(name))
    if key is None:
        raise ValueError(f"unknown MD22 molecule {name!r}; choose from {list(MD22_FILES)}")
    return key


class MD22(AtomsDataset):
    r"""One MD22 molecular dynamics trajectory (Ac-Ala3-NHMe, DHA, stachyose, AT-AT, AT-AT-CG-CG,
    buckyball-catcher, double-walled nanotube).

    Each frame is a :class:`~torch_geometric.data.Data` with ``z`` ``[n]`` long, ``pos`` ``[n, 3]``
    float32 (Angstrom), ``energy`` ``[1]`` float64 (kcal/mol) and ``force`` ``[n, 3]`` float32
    (kcal/mol/Angstrom): MD17's units, as the files hold them.

    Args:
        root: folder with ``raw/md22_<name>.npz``.
        molecule: one of :data:`MD22_FILES` (case, spaces, ``-`` and ``_`` do not matter).
    """

    energy_unit = "kcal/mol"
    force_unit = "kcal/mol/Angstrom"
    molecules: Tuple[str, ...] = tuple(MD22_FILES)
    revised = False  # the protocol shared with MD17 asks

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
        self.molecule = canonical_md22_molecule(molecule)
        super().__init__(root, transform, pre_transform, pre_filter, force_reload=force_reload, log=log)

    @staticmethod
    def raw_file_for(molecule: str) -> str:
        """The path under ``root/raw`` this class reads for ``molecule``."""
        return MD22_FILES[canonical_md22_molecule(molecule)][0]

    @property
    def raw_file_names(self) -> List[str]:
        return [MD22_FILES[self.molecule][0]]

    @property
    def remote_files(self) -> Sequence[RemoteFile]:
        filename = MD22_FILES[self.molecule][0]
        return (RemoteFile(MD22_URL + filename, filename),)

    @property
    def processed_stem(self) -> str:
        return f"md22_{self.molecule}"

    def verify_download(self, remote: RemoteFile, path: Path) -> None:
        super().verify_download(remote, path)
        table = read_md17_npz(path, MD17_KEYS)
        expected = MD22_FILES[self.molecule][1]
        if len(table) != expected:
            raise DownloadVerificationError(
                f"{remote.filename} from {remote.url} has {len(table)} frames, the published file {expected}"
            )

    def read_raw(self) -> AtomsTable:
        return read_md17_npz(self.raw_paths[0], MD17_KEYS)

    def processing_summary(self) -> Dict[str, object]:
        return {"molecule": self.molecule}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, molecule={self.molecule!r})"
