"""ISO17: the real 40-row sample in its native format, a fixture folder for every fold, the protocol."""

from __future__ import annotations

import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest
import torch

from pyg_schnet.datasets import ISO17, DownloadVerificationError, RawFileError, RawFilesMissingError, ScaleUnits


def test_native_sample_loads(tmp_path, shared_data, iso17_rows, no_network):
    raw = tmp_path / "raw" / "iso17"
    raw.mkdir(parents=True)
    shutil.copyfile(shared_data / "iso17" / "iso17_eq_sample.db", raw / "reference_eq.db")
    ds = ISO17(tmp_path, "reference_eq")
    assert len(ds) == 40 and ds.energy_unit == "eV" and ds.force_unit == "eV/Angstrom"
    for k in (0, 17, 39):
        data, row = ds[k], iso17_rows[k]
        assert data.z.dtype == torch.long and data.z.tolist() == row["numbers"].tolist()
        assert data.pos.shape == (19, 3) and data.pos.dtype == torch.float32
        assert data.force.shape == (19, 3) and data.force.dtype == torch.float32
        assert data.energy.shape == (1,) and data.energy.dtype == torch.float64
        assert data.energy.item() == row["total_energy"]  # eV, exactly as stored
        torch.testing.assert_close(data.pos, torch.tensor(row["positions"], dtype=torch.float32), rtol=0, atol=0)
        assert data.idx.item() == k + 1
    assert torch.count_nonzero(ds._data.force) == 0  # equilibrium rows: forces exactly zero
    assert sorted(set(ds._data.z.tolist())) == [1, 6, 8]
    kcal = ScaleUnits(ISO17.EV_TO_KCAL_PER_MOL)(ds[0])
    assert kcal.energy.item() == pytest.approx(iso17_rows[0]["total_energy"] * 23.060548, rel=1e-7)


def test_every_split_of_the_fixture_folder(iso17_root, iso17_rows, iso17_tools, no_network):
    for split, rows in iso17_tools.folds.items():
        ds = ISO17(iso17_root, split)
        assert len(ds) == len(rows), split
        expected = torch.tensor([iso17_rows[i]["total_energy"] for i in rows], dtype=torch.float64)
        torch.testing.assert_close(ds._data.energy, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown ISO17 split 'train'"):
        ISO17(iso17_root, "train")


def test_protocol_with_the_archive_id_lists(iso17_root, iso17_rows):
    folder = iso17_root / "raw" / "iso17"
    train_ids, val_ids = [3, 1, 20, 7, 8, 9, 10, 11, 12, 13, 14, 15], [2, 4, 5, 6]
    (folder / "train_ids.txt").write_text("".join(f"{i}\n" for i in train_ids))
    (folder / "validation_ids.txt").write_text("".join(f"{i}\n" for i in val_ids))
    reference = ISO17(iso17_root, "reference")
    train, val = reference.train_val_indices()
    assert reference[train].row_ids().tolist() == train_ids  # 1-based row ids -> positions
    assert reference[val].row_ids().tolist() == val_ids
    assert reference[train][0].energy.item() == iso17_rows[2]["total_energy"]  # row id 3 = third row
    with pytest.raises(ValueError, match="n_val=5 differs from the 4 ids"):
        reference.train_val_indices(n_val=5)
    # test folds stay separate: within = other steps of the same molecules, other = unseen molecules
    within, other = ISO17(iso17_root, "test_within"), ISO17(iso17_root, "test_other")
    assert len(within) == 6 and len(other) == 6
    with pytest.raises(ValueError, match="applies to the 'reference' split"):
        within.train_val_indices()


def test_protocol_without_id_lists_is_a_seeded_split(iso17_root):
    reference = ISO17(iso17_root, "reference")
    train, val = reference.train_val_indices(seed=5, n_val=4)
    assert train.numel() == 16 and val.numel() == 4
    assert sorted(torch.cat([train, val]).tolist()) == list(range(20))
    again = reference.train_val_indices(seed=5, n_val=4)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    assert not torch.equal(val, reference.train_val_indices(seed=6, n_val=4)[1])
    with pytest.raises(ValueError, match="n_val=1000"):
        reference.train_val_indices()  # the paper's 1,000 validation examples do not fit in 20 rows


@pytest.mark.parametrize(
    "train_text, val_text, message",
    [
        ("1\n2\n", "2\n3\n", r"share 1 id"),
        ("1\n0\n", "3\n", r"train_ids\.txt: id 0 is not a row of .* \(row ids 1\.\.20; ids are 1-based"),
        ("1\n21\n", "3\n", r"id 21 is not a row"),
        ("1\nabc\n", "3\n", r"train_ids\.txt, line 2: 'abc' is not an id"),
        ("1\n1\n", "3\n", r"train_ids\.txt: id 1 appears twice"),
        ("1\n", None, r"train_ids\.txt exists but .*validation_ids\.txt does not"),
    ],
)
def test_bad_id_lists(iso17_root, train_text, val_text, message):
    folder = iso17_root / "raw" / "iso17"
    (folder / "train_ids.txt").write_text(train_text)
    if val_text is not None:
        (folder / "validation_ids.txt").write_text(val_text)
    reference = ISO17(iso17_root, "reference")
    with pytest.raises((RawFileError, FileNotFoundError), match=message):
        reference.train_val_indices()


def test_empty_database(tmp_path, iso17_rows, iso17_tools):
    path = tmp_path / "raw" / "iso17" / "test_eq.db"
    iso17_tools.write_db(path, iso17_rows[:1])
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM systems")
    with pytest.raises(RawFileError, match=r"test_eq\.db: the database is empty"):
        ISO17(tmp_path, "test_eq")
    assert list((tmp_path / "processed").glob("*.pt")) == []


def test_not_a_database(tmp_path):
    path = tmp_path / "raw" / "iso17" / "test_eq.db"
    path.parent.mkdir(parents=True)
    path.write_text("this is not SQLite\n" * 100)
    with pytest.raises(RawFileError, match=r"test_eq\.db: not an SQLite database"):
        ISO17(tmp_path, "test_eq")
    path.write_bytes(b"")  # an empty file: SQLite without ASE's tables
    with pytest.raises(RawFileError, match=r"not an ASE database \(no 'systems' table"):
        ISO17(tmp_path, "test_eq")


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda row: row.update(atomic_forces=row["atomic_forces"][:18]),
            r"row id 2: 'atomic_forces' has shape \(18, 3\)",
        ),
        (
            lambda row: row.update(
                numbers=row["numbers"][:18], positions=row["positions"][:18], atomic_forces=row["atomic_forces"][:18]
            ),
            r"row id 2 has 18 atoms; ISO17 molecules",
        ),
        (
            lambda row: row.update(total_energy=float("nan")),
            r"reference\.db: row id 2: non-finite key 'total_energy' \(nan\)",
        ),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, iso17_rows, iso17_tools, edit, message):
    rows = [dict(r) for r in iso17_rows[:3]]
    edit(rows[1])
    iso17_tools.write_db(tmp_path / "raw" / "iso17" / "reference.db", rows)
    with pytest.raises(RawFileError, match=message):
        ISO17(tmp_path, "reference")


def test_missing_energy_key(tmp_path, iso17_rows):
    import ase.db
    from ase import Atoms

    path = tmp_path / "raw" / "iso17" / "test_other.db"
    path.parent.mkdir(parents=True)
    with ase.db.connect(str(path)) as db:
        row = iso17_rows[0]
        db.write(
            Atoms(numbers=row["numbers"], positions=row["positions"]),
            energy_eV=1.0,
            data={"atomic_forces": row["atomic_forces"]},
        )
    with pytest.raises(RawFileError, match=r"test_other\.db: row id 1 has no key 'total_energy'"):
        ISO17(tmp_path, "test_other")


def make_archive(tmp_path: Path, template: Path, folds) -> Path:
    archive = tmp_path / "iso17.tar.gz"
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / "train_ids.txt").write_text("1\n2\n")
    (ids / "validation_ids.txt").write_text("3\n")
    with tarfile.open(archive, "w:gz") as tar:
        for fold in folds:
            tar.add(template / "raw" / "iso17" / f"{fold}.db", arcname=f"iso17/{fold}.db")
        for name in ("train_ids.txt", "validation_ids.txt"):
            tar.add(ids / name, arcname=f"iso17/{name}")
    return archive


def test_download_extracts_every_fold_once(tmp_path, iso17_template, iso17_tools, serve, temporaries):
    archive = make_archive(tmp_path, iso17_template, iso17_tools.folds)
    root = tmp_path / "root"
    fetched = serve({"http://quantum-machine.org/datasets/iso17.tar.gz": archive})
    other = ISO17(root, "test_other")
    assert len(other) == 6 and len(fetched) == 1
    assert sorted(p.name for p in (root / "raw" / "iso17").iterdir()) == sorted(
        [f"{f}.db" for f in iso17_tools.folds] + ["train_ids.txt", "validation_ids.txt"]
    )
    assert not (root / "raw" / "iso17.tar.gz").exists() and temporaries(root) == []
    reference = ISO17(root, "reference")  # no second download
    assert len(fetched) == 1
    assert [t.tolist() for t in reference.train_val_indices()] == [[0, 1], [2]]


def test_download_lacking_a_fold_is_refused(tmp_path, iso17_template, serve, temporaries):
    archive = make_archive(tmp_path, iso17_template, ["reference", "test_within"])
    root = tmp_path / "root"
    serve({"http://quantum-machine.org/datasets/iso17.tar.gz": archive})
    with pytest.raises(DownloadVerificationError, match=r"iso17\.tar\.gz .* lacks \[.*reference_eq\.db"):
        ISO17(root, "reference")
    assert list((root / "raw").rglob("*.db")) == [] and temporaries(root) == []


def test_offline_lists_the_archive(tmp_path, offline):
    with pytest.raises(RawFilesMissingError) as info:
        ISO17(tmp_path, "test_within")
    message = str(info.value)
    assert str(tmp_path / "raw" / "iso17" / "test_within.db") in message
    assert "http://quantum-machine.org/datasets/iso17.tar.gz" in message
    assert offline == ["http://quantum-machine.org/datasets/iso17.tar.gz"]


def test_archive_placed_by_hand_is_unpacked_offline(tmp_path, iso17_template, iso17_tools, no_network, monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    archive = make_archive(tmp_path, iso17_template, iso17_tools.folds)
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    archive.rename(root / "raw" / "iso17.tar.gz")
    assert len(ISO17(root, "test_within")) == 6
    assert (root / "raw" / "iso17.tar.gz").exists()  # the user's file is kept
    assert (root / "raw" / "iso17" / "test_eq.db").exists() and no_network == []
