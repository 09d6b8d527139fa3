"""Fixtures for the data set tests: raw-format QM9 / ISO17 folders built from the real excerpts.

The real excerpts live in ``../shared/data`` (fixture ``shared_data`` of ``tests/conftest.py``,
which skips when the folder is absent). Raw folders are built in ``tmp_path`` from them; nothing
is copied into the project.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from pyg_schnet.datasets.base import AtomsDataset

# The published atomref.txt layout (figshare 3195395): a title line (its wording here is ours),
# a rule, two header lines (names, units), a rule, one row per element with the published
# values (ZPVE, U(0 K), U, H, G in Hartree, Cv in cal/(mol K)), a rule.
ATOMREF_TXT = """\
   Atomic reference data (B3LYP/6-31G(2df,p)), for computing atomization energies
=========================================================================================================
  Ele-    ZPVE         U (0 K)      U (298.15 K)    H (298.15 K)    G (298.15 K)     CV
  ment   Hartree       Hartree        Hartree         Hartree         Hartree        Cal/(Mol Kelvin)
=========================================================================================================
   H     0.000000     -0.500273      -0.498857       -0.497912       -0.510927       2.981
   C     0.000000    -37.846772     -37.845355      -37.844411      -37.861317       2.981
   N     0.000000    -54.583861     -54.582445      -54.581501      -54.598897       2.981
   O     0.000000    -75.064579     -75.063163      -75.062219      -75.079532       2.981
   F     0.000000    -99.718730     -99.717314      -99.716370      -99.733544       2.981
=========================================================================================================
"""

_RULE = "=" * 158
# The published uncharacterized.txt layout (figshare 3195404): blank lines, a paragraph, a rule,
# a header starting with '#', a rule, rows (index, three SMILES, D_IJ), a closing rule. The first
# three rows are real entries of the published list; rows for ids of our 20-molecule sample are
# added per test (no molecule 1-20 is uncharacterized in the real list).
_UNCHARACTERIZED_HEAD = f"""\



List of molecules among the 133885 GDB9 molecules for which the Corina generated Cartesian coordinates and the B3LYP/6-31G(2df,p) equilibrium geometry lead to
different SMILES and InChI strings when parsed through the program Openbabel. Given are the indices of these molecules in the database, the original GDB17
SMILES, the SMILES generated from the Cartesian coordinates using Openbabel, as well as the L1 norm of the difference between the Coulomb matrices.

{_RULE}
#   Index                           GDB17 SMILES                         SMILES for B3LYP XYZ              SMILES for Corina generated XYZ              D_IJ
{_RULE}
      58                               NC(=N)C#N                                    NC(=N)C#N                             [NH]C(=[NH2])C#N            6.036217
      61                               NC(=N)C=O                                    NC(=N)C=O                             [NH]C(=[NH2])C=O            5.631463
      80                        [NH3+]CC([O-])=O                                     NCC(=O)O                               [NH3]CC(=O)[O]            10.09360
"""
REAL_UNCHARACTERIZED_IDS = (58, 61, 80)


def uncharacterized_txt(extra_ids: Iterable[int] = ()) -> str:
    rows = "".join(
        f"{i:8d}                                    CC                                           CC                                   CC            1.000000\n"
        for i in extra_ids
    )
    return _UNCHARACTERIZED_HEAD + rows + _RULE + "\n"


class Qm9Builder:
    """Writes QM9 raw folders whose records are real (molecule 1 verbatim, 2-20 from qm9_sample.db)."""

    def __init__(self, shared: Path) -> None:
        from pyg_schnet.datasets._qm9_writer import sample_db_records

        self.sample_db = shared / "qm9" / "qm9_sample.db"
        self.xyz_1 = shared / "qm9" / "dsgdb9nsd_000001.xyz"
        self.records = {r[0]: r for r in sample_db_records(self.sample_db)}

    def text(self, gdb_id: int, fortran: bool = False) -> str:
        from pyg_schnet.datasets._qm9_writer import format_qm9_xyz

        if gdb_id == 1 and not fortran:
            return self.xyz_1.read_text()
        return format_qm9_xyz(*self.records[gdb_id], fortran=fortran)

    def members(self, ids: Sequence[int], fortran_ids: Sequence[int] = ()) -> List[Tuple[str, str]]:
        from pyg_schnet.datasets._qm9_writer import member_name

        return [(member_name(i), self.text(i, fortran=i in fortran_ids)) for i in ids]

    def write_root(
        self,
        root: Path,
        ids: Sequence[int] = tuple(range(1, 21)),
        exclude: Sequence[int] = (7,),
        fortran_ids: Sequence[int] = (3,),
        members: Optional[List[Tuple[str, str]]] = None,
        shuffle_seed: Optional[int] = None,
        atomref_text: str = ATOMREF_TXT,
    ) -> Path:
        from pyg_schnet.datasets._qm9_writer import write_qm9_archive

        raw = root / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        members = self.members(ids, fortran_ids) if members is None else members
        if shuffle_seed is not None:
            members = list(members)
            random.Random(shuffle_seed).shuffle(members)
        write_qm9_archive(raw / "dsgdb9nsd.xyz.tar.bz2", members)
        (raw / "atomref.txt").write_text(atomref_text)
        (raw / "uncharacterized.txt").write_text(uncharacterized_txt(exclude))
        return root


@pytest.fixture(scope="session")
def qm9_text_files() -> SimpleNamespace:
    """The atomref.txt text and a writer of uncharacterized.txt texts, in the published layouts."""
    return SimpleNamespace(atomref=ATOMREF_TXT, uncharacterized=uncharacterized_txt, real_ids=REAL_UNCHARACTERIZED_IDS)


@pytest.fixture(scope="session")
def qm9_builder(shared_data: Path) -> Qm9Builder:
    return Qm9Builder(shared_data)


@pytest.fixture(scope="session")
def iso17_rows(shared_data: Path) -> List[Dict[str, object]]:
    """The 40 real ISO17 rows: numbers, positions, total_energy (eV), atomic_forces (eV/A)."""
    import ase.db

    rows = []
    with ase.db.connect(str(shared_data / "iso17" / "iso17_eq_sample.db"), type="db", create_indices=False) as db:
        for row in db.select():
            rows.append(
                dict(
                    numbers=np.asarray(row.numbers),
                    positions=np.asarray(row.positions),
                    total_energy=float(row.key_value_pairs["total_energy"]),
                    atomic_forces=np.asarray(row.data["atomic_forces"], dtype=np.float64),
                )
            )
    return rows


def write_ase_db(path: Path, rows: Sequence[Dict[str, object]]) -> None:
    """An ISO17-layout database: total_energy as key-value pair, atomic_forces in data."""
    import ase.db
    from ase import Atoms

    path.parent.mkdir(parents=True, exist_ok=True)
    with ase.db.connect(str(path), type="db") as db:
        for row in rows:
            db.write(
                Atoms(numbers=row["numbers"], positions=row["positions"]),
                key_value_pairs={"total_energy": row["total_energy"]},
                data={"atomic_forces": row["atomic_forces"]},
            )


#: Which of the 40 sample rows go into each fold of the fixture folder.
ISO17_FOLDS = {
    "reference": range(0, 20),
    "reference_eq": range(20, 24),
    "test_within": range(24, 30),
    "test_other": range(30, 36),
    "test_eq": range(36, 40),
}


@pytest.fixture(scope="session")
def iso17_tools() -> SimpleNamespace:
    """``write_db(path, rows)`` and the fold layout ``folds`` of the fixture folder."""
    return SimpleNamespace(write_db=write_ase_db, folds=ISO17_FOLDS)


@pytest.fixture(scope="session")
def iso17_template(tmp_path_factory: pytest.TempPathFactory, iso17_rows) -> Path:
    """A read-only master of the fixture folder (copy it before changing anything)."""
    root = tmp_path_factory.mktemp("iso17_template")
    for fold, rows in ISO17_FOLDS.items():
        write_ase_db(root / "raw" / "iso17" / f"{fold}.db", [iso17_rows[i] for i in rows])
    return root


@pytest.fixture
def iso17_root(tmp_path: Path, iso17_template: Path) -> Path:
    """``tmp_path/iso17_root/raw/iso17/<fold>.db`` for all five folds, without id lists."""
    import shutil

    root = tmp_path / "iso17_root"
    shutil.copytree(iso17_template / "raw", root / "raw")
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Fail the test if a data set tries to download; returns the list of attempted URLs."""
    attempts: List[str] = []

    def refuse(self, url, destination, description):
        attempts.append(url)
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(AtomsDataset, "_fetch", refuse)
    return attempts


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Simulate a machine without network: every download raises URLError."""
    import urllib.error

    attempts: List[str] = []

    def unreachable(self, url, destination, description):
        attempts.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(AtomsDataset, "_fetch", unreachable)
    monkeypatch.delenv("PYG_SCHNET_OFFLINE", raising=False)
    return attempts


def serve_files(monkeypatch: pytest.MonkeyPatch, files: Dict[str, Path]) -> List[str]:
    """Simulate downloads: a URL in ``files`` is copied from the local path; others fail."""
    import shutil
    import urllib.error

    fetched: List[str] = []

    def fake_fetch(self, url, destination, description):
        if url not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        fetched.append(url)
        shutil.copyfile(files[url], destination)
        return os.path.getsize(destination)

    monkeypatch.setattr(AtomsDataset, "_fetch", fake_fetch)
    monkeypatch.delenv("PYG_SCHNET_OFFLINE", raising=False)
    return fetched


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    return lambda files: serve_files(monkeypatch, files)


def leftover_temporaries(root: Path) -> List[Path]:
    return [p for p in root.rglob("*") if re.search(r"\.tmp-\d+$", p.name) or p.name.startswith(".extract-")]


@pytest.fixture
def temporaries():
    return leftover_temporaries
