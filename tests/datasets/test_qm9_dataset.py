"""QM9 from raw-format files: parser against the real sample database, full pipeline, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import QM9, RawFileError, ScaleUnits
from pyg_schnet.datasets._qm9_writer import DB_PROPERTY_KEYS, fortran_float, member_name, write_qm9_archive
from pyg_schnet.datasets.qm9 import parse_atomref, parse_qm9_xyz, parse_uncharacterized

# qm9_sample.db metadata keys for the six atomref columns of atomref.txt
ATOMREF_DB_KEYS = {
    "zpve": "zpve",
    "U0": "energy_U0",
    "U": "energy_U",
    "H": "enthalpy_H",
    "G": "free_energy",
    "Cv": "heat_capacity",
}
# how the sample database spells our units
DB_UNIT_SPELLING = {
    "GHz": "GHz",
    "Debye": "D",
    "a0^3": "a0^3",
    "Hartree": "Ha",
    "a0^2": "a0^2",
    "cal/(mol K)": "cal/mol/K",
}


def sample_db(shared_data: Path):
    import ase.db

    return ase.db.connect(str(shared_data / "qm9" / "qm9_sample.db"), type="db", create_indices=False)


def test_xyz_of_molecule_1_parses_to_row_1_of_the_sample_db(shared_data):
    text = (shared_data / "qm9" / "dsgdb9nsd_000001.xyz").read_text()
    record = parse_qm9_xyz(text, "dsgdb9nsd_000001.xyz")
    row = sample_db(shared_data).get(id=1)
    assert record.gdb_id == 1
    assert record.numbers == row.numbers.tolist()
    np.testing.assert_array_equal(record.positions_array, row.positions)  # exact, float64
    units = sample_db(shared_data).metadata["_property_unit_dict"]
    for column, key in enumerate(DB_PROPERTY_KEYS):
        assert record.properties[column] == float(row.data[key][0]), key
        assert DB_UNIT_SPELLING[QM9.target_units[column]] == units[key], key
    assert record.properties[QM9.target_index("U0")] == -40.47893


def test_fortran_style_floats():
    assert fortran_float(0.0019761204) == "1.9761204*^-3"
    text = "1\ngdb 9\t" + "\t".join(["1.2*^-6"] + ["0.5"] * 14) + "\t\nH\t1.5*^-2\t0.\t-3.25*^1\t0.1\n0.0\nH\tH\nI\tI\n"
    record = parse_qm9_xyz(text, "x.xyz")
    assert record.properties[0] == 1.2e-6
    assert record.positions == [1.5e-2, 0.0, -32.5]


def test_atomrefs_equal_the_sample_db_metadata(qm9_builder, tmp_path, shared_data):
    root = qm9_builder.write_root(tmp_path / "qm9")
    reference = sample_db(shared_data).metadata["atomrefs"]
    for name, key in ATOMREF_DB_KEYS.items():
        ours = QM9.atomref(name, root)
        assert ours.shape == (100,) and ours.dtype == torch.float64
        np.testing.assert_array_equal(ours.numpy(), np.asarray(reference[key], dtype=np.float64), err_msg=name)
    ds = QM9(root)
    torch.testing.assert_close(ds.atomref("U0"), QM9.atomref("U0", root), rtol=0, atol=0)
    with pytest.raises(KeyError, match="homo"):
        ds.atomref("homo")


def test_atomref_layout_independence_and_errors(tmp_path, qm9_text_files):
    ATOMREF_TXT = qm9_text_files.atomref
    base = tmp_path / "a.txt"
    base.write_text(ATOMREF_TXT)
    shifted = tmp_path / "b.txt"
    shifted.write_text("\n\nextra notes\nmore notes\n" + ATOMREF_TXT + "\n 1 Hartree = 27.211 eV\n")
    assert parse_atomref(base) == parse_atomref(shifted)
    assert parse_atomref(base)["C"]["U0"] == -37.846772

    no_fluorine = tmp_path / "c.txt"
    no_fluorine.write_text("\n".join(l for l in ATOMREF_TXT.splitlines() if not l.strip().startswith("F ")))
    with pytest.raises(RawFileError, match=r"c\.txt: no row for element\(s\) \['F'\]"):
        parse_atomref(no_fluorine)
    twice = tmp_path / "d.txt"
    lines = ATOMREF_TXT.splitlines()
    twice.write_text("\n".join(lines + [lines[6]]))
    with pytest.raises(RawFileError, match=r"d\.txt, line 12: element C already given on line 7"):
        parse_atomref(twice)


def test_uncharacterized_layout_and_errors(tmp_path, qm9_text_files):
    path = tmp_path / "u.txt"
    path.write_text(qm9_text_files.uncharacterized([7, 133866]))
    assert parse_uncharacterized(path) == [*qm9_text_files.real_ids, 7, 133866]
    path.write_text(qm9_text_files.uncharacterized([7, 7]))
    with pytest.raises(RawFileError, match=r"u\.txt, line 15: id 7 already listed on line 14"):
        parse_uncharacterized(path)
    path.write_text("header only\n=====\n")
    with pytest.raises(RawFileError, match=r"u\.txt: no molecule ids"):
        parse_uncharacterized(path)


def test_full_pipeline_from_a_raw_archive(qm9_builder, tmp_path, shared_data, no_network):
    # molecule 1 verbatim, 2-20 from the database, molecule 3 with '*^' floats, 7 on the exclusion
    # list, archive order shuffled
    root = qm9_builder.write_root(tmp_path / "qm9", exclude=(7,), fortran_ids=(3,), shuffle_seed=1)
    assert "*^" in qm9_builder.text(3, fortran=True)
    ds = QM9(root)
    assert len(ds) == 19
    assert ds._data.idx.tolist() == [i for i in range(1, 21) if i != 7]
    db = sample_db(shared_data)
    for data in ds:
        row = db.get(id=int(data.idx))
        assert data.z.dtype == torch.long and data.pos.dtype == torch.float32 and data.y.dtype == torch.float64
        assert data.y.shape == (1, 15) and data.idx.shape == (1,)
        assert data.z.tolist() == row.numbers.tolist()
        torch.testing.assert_close(data.pos, torch.tensor(row.positions, dtype=torch.float32), rtol=0, atol=0)
        expected = torch.tensor([[float(row.data[k][0]) for k in DB_PROPERTY_KEYS]], dtype=torch.float64)
        torch.testing.assert_close(data.y, expected, rtol=0, atol=0)
    summary = ds.summary
    assert summary["records_read"] == 20 and summary["dropped_uncharacterized"] == 1 and summary["kept"] == 19
    assert summary["uncharacterized_not_in_archive"] == 3  # the three real ids 58, 61, 80
    assert no_network == []
    again = QM9(root)  # processed once, then loaded
    torch.testing.assert_close(again._data.y, ds._data.y, rtol=0, atol=0)


def test_pre_filter_and_pre_transform_path_matches_fast_path(qm9_builder, tmp_path):
    fast = QM9(qm9_builder.write_root(tmp_path / "fast"))
    slow = QM9(
        qm9_builder.write_root(tmp_path / "slow"), pre_filter=lambda d: d.z.numel() > 4, pre_transform=lambda d: d
    )
    kept = [d for d in fast if d.z.numel() > 4]
    assert len(slow) == len(kept) > 0
    for a, b in zip(slow, kept):
        for key in ("z", "pos", "y", "idx"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_targets_and_unit_conversion(qm9_builder, tmp_path):
    assert QM9.target_names == (
        "A",
        "B",
        "C",
        "mu",
        "alpha",
        "homo",
        "lumo",
        "gap",
        "r2",
        "zpve",
        "U0",
        "U",
        "H",
        "G",
        "Cv",
    )
    assert QM9.target_index("U0") == 10 and QM9.target_index(14) == 14
    with pytest.raises(KeyError, match="u0"):
        QM9.target_index("u0")
    with pytest.raises(IndexError):
        QM9.target_index(15)
    assert QM9.HARTREE_TO_EV == pytest.approx(27.211386, rel=1e-6)
    assert QM9.HARTREE_TO_KCAL_PER_MOL == pytest.approx(627.5095, rel=1e-6)
    ds = QM9(qm9_builder.write_root(tmp_path / "qm9"), transform=ScaleUnits(QM9.HARTREE_TO_KCAL_PER_MOL, target="U0"))
    first = ds[0]
    assert first.energy.shape == (1,) and first.energy.dtype == torch.float64
    assert first.energy.item() == pytest.approx(-40.47893 * 627.5094738898777, rel=1e-12)


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_truncated_archive_names_the_file(qm9_builder, tmp_path):
    root = qm9_builder.write_root(tmp_path / "qm9")
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    payload = archive.read_bytes()
    archive.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(RawFileError, match=r"dsgdb9nsd\.xyz\.tar\.bz2: corrupt or truncated archive"):
        QM9(root)
    assert not (root / "processed" / "qm9_v2.pt").exists()


def test_corrupt_archive_bytes(qm9_builder, tmp_path):
    root = qm9_builder.write_root(tmp_path / "qm9")
    archive = root / "raw" / "dsgdb9nsd.xyz.tar.bz2"
    payload = bytearray(archive.read_bytes())
    payload[len(payload) // 2 : len(payload) // 2 + 64] = bytes(64)
    archive.write_bytes(bytes(payload))
    with pytest.raises(RawFileError, match=r"corrupt or truncated archive"):
        QM9(root)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace("0.002150416", "0.0021x50416"),
            r"member dsgdb9nsd_000001\.xyz, line 4: could not convert",
        ),
        (lambda t: t.replace("H\t 1.0117308433", "Xx\t 1.0117308433"), r"line 5: unknown element symbol 'Xx'"),
        (lambda t: "\n".join(t.split("\n")[:6]), r"line 7: the record ends early \(it has 6 lines\)"),
        (lambda t: "\n".join(t.split("\n")[:8]), r"line 9: the record ends early \(it has 8 lines\)"),
        (lambda t: t.replace("C\tC\t\n", "\n"), r"line 9: expected the SMILES strings, found an empty line"),
        (lambda t: t.replace("gdb 1\t", "gdb 2\t"), r"line 2: gdb id 2 does not match the file name"),
        (lambda t: "6" + t[1:], r"line 8: expected 'element x y z charge', found 9 fields"),
        (lambda t: t.replace("\t6.469\t", "\t"), r"line 2: expected 'gdb <id>' and 15 properties, found 16"),
    ],
)
def test_malformed_record_names_member_and_line(qm9_builder, tmp_path, edit, message):
    members = qm9_builder.members(range(1, 6))
    members[0] = (members[0][0], edit(members[0][1]))
    root = qm9_builder.write_root(tmp_path / "qm9", members=members)
    with pytest.raises(RawFileError, match=message):
        QM9(root)
    assert not (root / "processed" / "qm9_v2.pt").exists()


def test_duplicate_ids_and_non_ascii(qm9_builder, tmp_path):
    members = qm9_builder.members([1, 2])
    dup = members + [("other/" + members[1][0], members[1][1])]
    root = qm9_builder.write_root(tmp_path / "dup", members=dup)
    with pytest.raises(RawFileError, match=r"gdb id 2 also in member dsgdb9nsd_000002\.xyz"):
        QM9(root)
    bad = [members[0], (members[1][0], members[1][1].replace("C\tC", "C\tC\u00e9").encode("utf-8"))]
    root = qm9_builder.write_root(tmp_path / "ascii", members=bad)
    with pytest.raises(RawFileError, match=r"member dsgdb9nsd_000002\.xyz, line \d+: not ASCII"):
        QM9(root)


def test_unexpected_members_are_reported_not_silently_dropped(qm9_builder, tmp_path):
    members = qm9_builder.members([1, 2]) + [("README.txt", "not a molecule\n")]
    ds = QM9(qm9_builder.write_root(tmp_path / "qm9", members=members, exclude=()))
    assert len(ds) == 2 and ds.summary["ignored_members"] == ["README.txt"]


def test_interrupted_processing_leaves_nothing_trusted(qm9_builder, tmp_path, monkeypatch, temporaries):
    import pyg_schnet.datasets.qm9 as qm9_module

    root = qm9_builder.write_root(tmp_path / "qm9")
    real_parse = qm9_module.parse_qm9_xyz
    calls = {"n": 0}

    def parse_then_interrupt(text, source):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_parse(text, source)

    monkeypatch.setattr(qm9_module, "parse_qm9_xyz", parse_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        QM9(root)
    processed = root / "processed"
    assert not (processed / "qm9_v2.pt").exists()
    monkeypatch.setattr(qm9_module, "parse_qm9_xyz", real_parse)

    # a crash while the processed file is being written: a partial temporary, then the error
    import pyg_schnet.io.files as io_module  # where atomic_torch_save looks up atomic_write_bytes

    real_write = io_module.atomic_write_bytes

    def write_half_then_fail(path, payload):
        if str(path).endswith(".pt"):
            with io_module.atomic_path(path) as tmp:
                tmp.write_bytes(payload[: len(payload) // 2])
                raise OSError("disk full")
        return real_write(path, payload)

    monkeypatch.setattr(io_module, "atomic_write_bytes", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        QM9(root)
    assert not (processed / "qm9_v2.pt").exists()
    assert temporaries(root) == []
    monkeypatch.setattr(io_module, "atomic_write_bytes", real_write)

    # a temporary left by a killed process (its pid no longer exists) is removed, and the run succeeds
    stale = processed / ".qm9_v2.pt.tmp-999999999"
    stale.write_bytes(b"half a file")
    ds = QM9(root)
    assert len(ds) == 19 and not stale.exists()


def test_archive_reader_yields_every_member_in_order(tmp_path, qm9_builder):
    from pyg_schnet.datasets.qm9 import iter_qm9_archive

    members = qm9_builder.members(range(1, 21))
    write_qm9_archive(tmp_path / "a.tar.bz2", members)
    names = [name for name, _ in iter_qm9_archive(tmp_path / "a.tar.bz2")]
    assert names == [member_name(i) for i in range(1, 21)]
