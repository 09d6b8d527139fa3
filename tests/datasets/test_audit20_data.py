"""Data defects of issue 20: QM9 archive links (item 7), CR-only QM9 records and symbolic link loops
(item 12), repeated MD17 frames and ISO17 rows that are no C7O2H10 molecule or are stored periodic
(item 11). Raw files are built in tmp_path from the real excerpts of ../shared/data."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import ISO17, MD17, QM9, RawFileError, random_split
from pyg_schnet.datasets.errors import DuplicateFramesWarning, SymlinkLoopError
from pyg_schnet.datasets.qm9 import parse_qm9_xyz
from pyg_schnet.datasets.raw_files import link_raw_file
from pyg_schnet.datasets.split import repeated_frames


# ---------------------------------------------------------------------------------------------
# QM9: links in the archive, CR-only line endings
# ---------------------------------------------------------------------------------------------
def add_link(archive: Path, name: str, target: str, kind: bytes) -> None:
    """Rewrite the .tar.bz2 ``archive`` with one more member: a link ``name`` -> ``target``."""
    with tarfile.open(archive, "r:bz2") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:bz2") as tar:
        for member, payload in members:
            tar.addfile(member, io.BytesIO(payload))
        link = tarfile.TarInfo(name)
        link.type, link.linkname = kind, target
        tar.addfile(link)


@pytest.mark.parametrize(
    "kind, described", [(tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link")], ids=["symlink", "hardlink"]
)
def test_qm9_archive_link_member_is_refused_by_name(qm9_builder, tmp_path, no_network, kind, described):
    root = qm9_builder.write_root(tmp_path / "qm9", ids=range(1, 20), exclude=())
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    add_link(archive, "dsgdb9nsd_000020.xyz", "dsgdb9nsd_000019.xyz", kind)
    with pytest.raises(
        RawFileError,
        match=rf"dsgdb9nsd\.xyz\.tar\.bz2: 1 member\(s\) are not regular files and hold no record of their own: "
        rf"dsgdb9nsd_000020\.xyz \({described} to dsgdb9nsd_000019\.xyz\)",
    ):
        QM9(root)
    assert not list((root / "processed").glob("*.pt"))  # nothing half-written


def test_qm9_records_with_cr_only_line_endings_parse_like_unix_ones(qm9_builder, tmp_path, no_network):
    text = qm9_builder.text(1)  # the real dsgdb9nsd_000001.xyz
    unix = parse_qm9_xyz(text, "unix")
    old_mac = text.replace("\r\n", "\n").replace("\n", "\r")
    assert "\n" not in old_mac
    mac = parse_qm9_xyz(old_mac, "mac")
    assert (mac.gdb_id, mac.numbers, mac.positions, mac.properties) == (
        unix.gdb_id,
        unix.numbers,
        unix.positions,
        unix.properties,
    )
    # and through the archive: members 2 (CR) and 3 (CRLF) load as their LF versions do
    members = qm9_builder.members([1, 2, 3])
    endings = [
        members[0],
        (members[1][0], members[1][1].replace("\n", "\r")),
        (members[2][0], members[2][1].replace("\n", "\r\n")),
    ]
    expected = QM9(qm9_builder.write_root(tmp_path / "lf", members=members, exclude=()))
    got = QM9(qm9_builder.write_root(tmp_path / "cr", members=endings, exclude=()))
    assert len(got) == 3
    for a, b in zip(got, expected):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.z, b.z) and torch.equal(a.y, b.y)


# ---------------------------------------------------------------------------------------------
# symbolic link loops
# ---------------------------------------------------------------------------------------------
def test_link_loop_in_the_data_root_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(
        SymlinkLoopError,
        match=r"MD17: data root .*loop: the path runs through a symbolic link loop "
        r"\(.*loop -> loop\)",
    ):
        MD17(tmp_path / "loop", "ethanol")


def test_link_loop_among_raw_files_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    raw = tmp_path / "md17" / "raw"
    raw.mkdir(parents=True)
    (raw / "a").symlink_to("b")
    (raw / "b").symlink_to("a")
    (raw / "md17_ethanol.npz").symlink_to("a")
    with pytest.raises(
        SymlinkLoopError,
        match=r"MD17: raw file .*md17_ethanol\.npz: the path runs through a symbolic link loop "
        r"\(.*md17_ethanol\.npz -> a -> b -> a\)",
    ):
        MD17(tmp_path / "md17", "ethanol")
    # a loop in a folder on the way (ISO17's raw/iso17) is named as well
    iso = tmp_path / "iso17" / "raw"
    iso.mkdir(parents=True)
    (iso / "iso17").symlink_to("iso17")
    with pytest.raises(
        SymlinkLoopError, match=r"ISO17: raw file .*reference\.db: .*symbolic link loop \(.*raw/iso17 -> iso17\)"
    ):
        ISO17(tmp_path / "iso17", "reference")


def test_link_raw_file_names_a_loop(tmp_path):
    (tmp_path / "looped.npz").symlink_to("looped.npz")
    with pytest.raises(SymlinkLoopError, match=r"data file .*looped\.npz: the path runs through a symbolic link loop"):
        link_raw_file(tmp_path / "looped.npz", tmp_path / "root", "md17_ethanol.npz")


# ---------------------------------------------------------------------------------------------
# MD17: repeated frames
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def repeated_md17(shared_data: Path, tmp_path: Path) -> Path:
    """200 real ethanol frames plus copies of frames 3, 7, 3 and 150 (frames 200-203)."""
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as src:
        order = np.concatenate([np.arange(200), [3, 7, 3, 150]])
        raw = tmp_path / "md17" / "raw"
        raw.mkdir(parents=True)
        np.savez(raw / "md17_ethanol.npz", R=src["R"][order], E=src["E"][order], F=src["F"][order], z=src["z"])
    return tmp_path / "md17"


def test_repeated_md17_frames_warn_and_unique_split_keeps_copies_apart(repeated_md17, no_network):
    ds = MD17(repeated_md17, "ethanol")
    assert len(ds) == 204
    assert ds.summary["repeated_frames"].startswith("4 of 204 frames repeat earlier ones")
    expected_first = torch.arange(204)
    expected_first[200:] = torch.tensor([3, 7, 3, 150])
    assert torch.equal(ds.repeated_frames(), expected_first)
    with pytest.warns(
        DuplicateFramesWarning,
        match=r"MD17: 4 of 204 examples repeat earlier ones bit for bit \(same atoms and positions; examples "
        r"200 = 3, 201 = 7, 202 = 3, 203 = 150\), 200 are distinct: a random split puts copies",
    ):
        plain = ds.random_split(100, n_val=50)
    # the plain split is unchanged (the paper's protocol) and leaks: frame 7 trains, its copy 201 tests
    assert torch.equal(plain.train, random_split(204, 100, n_val=50).train)
    assert 7 in plain.train.tolist() and 201 in plain.test.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = ds.random_split(100, n_val=50, unique=True)
    assert split.sizes() == (100, 50, 50)
    chosen = torch.cat([split.train, split.val, split.test])
    assert torch.unique(chosen).numel() == 200 and int(chosen.max()) < 200  # only first copies, each once
    positions = ds._data.pos.reshape(-1, 9, 3)
    for a, b in ((split.train, split.test), (split.train, split.val), (split.val, split.test)):
        shared = (positions[a][:, None] == positions[b][None]).flatten(2).all(-1)
        assert not bool(shared.any())
    # a subset view numbers its repeats in its own order
    sub = ds[torch.tensor([200, 5, 3, 202])]
    assert sub.repeated_frames().tolist() == [0, 1, 0, 0]


def test_data_without_repeats_splits_as_before_without_warning(shared_data, tmp_path, no_network):
    raw = tmp_path / "md17" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared_data / "md17" / "md17_ethanol.npz", raw / "md17_ethanol.npz")
    ds = MD17(tmp_path / "md17", "ethanol")
    assert "repeated_frames" not in ds.summary
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for unique in (False, True):
            split = ds.random_split(1000, n_val=250, unique=unique)
            assert torch.equal(split.test, random_split(1500, 1000, n_val=250).test)


def test_repeated_frames_compares_atoms_and_sizes():
    z = torch.tensor([1, 8, 1, 8, 8, 1, 1, 8, 6])
    pos = torch.zeros(9, 3)
    pos[:, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    # frames: [H O] [H O] (a copy), [O H] (other atoms, same positions), [H O], [C] alone
    first = repeated_frames(z, pos, torch.tensor([2, 2, 2, 2, 1]))
    assert first.tolist() == [0, 0, 2, 0, 4]
    with pytest.raises(ValueError, match="distinct holds an index twice"):
        random_split(5, 1, n_val=1, distinct=[0, 0, 2])


# ---------------------------------------------------------------------------------------------
# ISO17: rows that are not C7O2H10 or are stored periodic
# ---------------------------------------------------------------------------------------------
def write_iso17_rows(path: Path, rows, edit=None) -> None:
    """ISO17's layout (total_energy key-value pair, atomic_forces data); ``edit(k, atoms)`` may change row k."""
    import ase.db
    from ase import Atoms

    path.parent.mkdir(parents=True, exist_ok=True)
    with ase.db.connect(str(path), type="db") as db:
        for k, row in enumerate(rows):
            atoms = Atoms(numbers=row["numbers"], positions=row["positions"])
            if edit is not None:
                edit(k, atoms)
            db.write(
                atoms,
                key_value_pairs={"total_energy": row["total_energy"]},
                data={"atomic_forces": row["atomic_forces"]},
            )


def test_iso17_row_of_another_composition_is_refused(iso17_rows, tmp_path, no_network):
    def fluorinate(k, atoms):
        if k in (3, 5):
            numbers = atoms.numbers.copy()
            numbers[np.nonzero(numbers == 1)[0][0]] = 9  # one H -> F: C7O2H9F, still 19 atoms
            atoms.numbers = numbers

    write_iso17_rows(tmp_path / "raw" / "iso17" / "reference_eq.db", iso17_rows[:8], fluorinate)
    with pytest.raises(
        RawFileError,
        match=r"reference_eq\.db: row id 4 is C7O2H9F, not C7O2H10 \(every ISO17 molecule is an isomer of C7O2H10\); "
        r"2 row\(s\) of 8 differ",
    ):
        ISO17(tmp_path, "reference_eq")


def test_iso17_row_stored_periodic_is_refused(iso17_rows, tmp_path, no_network):
    def periodic(k, atoms):
        if k == 6:
            atoms.cell = [10.0, 10.0, 10.0]
            atoms.pbc = True

    write_iso17_rows(tmp_path / "raw" / "iso17" / "reference_eq.db", iso17_rows[:8], periodic)
    with pytest.raises(
        RawFileError,
        match=r"reference_eq\.db: row id 7 is stored periodic \(pbc \[True, True, True\], "
        r"cell \[\[10\.0, 0\.0, 0\.0\], .*this data set holds molecules",
    ):
        ISO17(tmp_path, "reference_eq")
    # the real rows (identity cell, pbc False) load, as before
    shutil.rmtree(tmp_path / "raw")
    write_iso17_rows(tmp_path / "raw" / "iso17" / "reference_eq.db", iso17_rows[:8])
    assert len(ISO17(tmp_path, "reference_eq")) == 8
