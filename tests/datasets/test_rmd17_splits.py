"""rMD17's official splits (``rmd17/splits/index_{train,test}_0K.csv``, K = 1..5) from files in the published layout.

The npz is the real 1,500-frame MD17 ethanol excerpt re-keyed as ``rmd17_ethanol.npz`` (keys
``nuclear_charges``, ``coords``, ``energies``, ``forces``); the split files are written here, one
integer per line as in the archive, with 1,000 training indices and (the excerpt holding only 1,500
frames) 250 test indices instead of the published 1,000.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import MD17, DownloadVerificationError, RawFileError
from pyg_schnet.datasets.md17 import RMD17_FILES


@pytest.fixture(scope="module")
def rmd17_arrays(shared_data: Path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {
            "nuclear_charges": f["z"].astype(np.uint8),
            "coords": f["R"],
            "energies": f["E"][:, 0],
            "forces": f["F"],
        }


def _npz_bytes(arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _split_text(indices) -> str:
    return "".join(f"{int(i)}\n" for i in indices)


def published_splits(num_frames: int = 1500, n_train: int = 1000, n_test: int = 250):
    """Five disjoint train/test index lists, as in the archive (seeded permutations of the frames)."""
    out = {}
    for k in range(1, 6):
        order = np.random.default_rng(100 + k).permutation(num_frames)
        out[k] = (order[:n_train], order[n_train : n_train + n_test])
    return out


def write_rmd17_root(root: Path, arrays, splits) -> Path:
    npz = root / "raw" / "rmd17" / "npz_data" / "rmd17_ethanol.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    npz.write_bytes(_npz_bytes(arrays))
    folder = root / "raw" / "rmd17" / "splits"
    folder.mkdir(parents=True, exist_ok=True)
    for k, (train, test) in splits.items():
        (folder / f"index_train_{k:02d}.csv").write_text(_split_text(train))
        (folder / f"index_test_{k:02d}.csv").write_text(_split_text(test))
    return root


@pytest.fixture
def rmd17_root(tmp_path, rmd17_arrays):
    return write_rmd17_root(tmp_path / "rmd17", rmd17_arrays, published_splits())


def test_official_split_returns_the_files_indices(rmd17_root, rmd17_arrays, no_network):
    ds = MD17(rmd17_root, "revised ethanol")
    splits = published_splits()
    for k in range(1, 6):
        train, test = ds.official_split(k)
        assert train.dtype == torch.long and test.dtype == torch.long
        assert train.tolist() == splits[k][0].tolist() and test.tolist() == splits[k][1].tolist()
    train, test = ds.official_split(3)
    subset = ds[train]
    np.testing.assert_array_equal(
        torch.cat([subset[j].energy for j in range(5)]).numpy(), rmd17_arrays["energies"][train[:5].numpy()]
    )
    np.testing.assert_array_equal(
        torch.cat([ds[int(i)].energy for i in test[:5]]).numpy(), rmd17_arrays["energies"][test[:5].numpy()]
    )
    assert not torch.equal(ds.official_split(1)[0], ds.official_split(2)[0])


@pytest.mark.parametrize(
    "part, text, message",
    [
        ("test", "3\n12.5\n", r"index_test_02\.csv, line 2: '12\.5' is not an integer id"),
        ("test", "3\nseven\n", r"index_test_02\.csv, line 2: 'seven' is not an id"),
        ("train", "0\n1500\n", r"index_train_02\.csv: index 1500 \(entry 2\) is outside 0\.\.1499"),
        ("train", "-1\n", r"index_train_02\.csv: index -1 \(entry 1\) is outside 0\.\.1499"),
        ("train", "4\n9\n4\n", r"index_train_02\.csv: index 4 appears twice \(entries 1 and 3\)"),
        ("train", "", r"index_train_02\.csv: no ids"),
    ],
)
def test_bad_split_files_name_the_file(rmd17_root, part, text, message):
    (rmd17_root / "raw" / "rmd17" / "splits" / f"index_{part}_02.csv").write_text(text)
    ds = MD17(rmd17_root, "revised ethanol")
    with pytest.raises(RawFileError, match=message):
        ds.official_split(2)
    assert ds.official_split(1)[0].numel() == 1000  # the other splits stay usable


def test_train_and_test_must_not_overlap(rmd17_root):
    folder = rmd17_root / "raw" / "rmd17" / "splits"
    (folder / "index_test_04.csv").write_text(
        "5\n" + (folder / "index_train_04.csv").read_text().splitlines()[7] + "\n"
    )
    ds = MD17(rmd17_root, "revised ethanol")
    with pytest.raises(RawFileError, match=r"index_train_04\.csv and .*index_test_04\.csv share 1 index"):
        ds.official_split(4)


def test_missing_split_file_bad_k_and_plain_md17(rmd17_root, tmp_path, shared_data):
    (rmd17_root / "raw" / "rmd17" / "splits" / "index_test_05.csv").unlink()
    ds = MD17(rmd17_root, "revised ethanol")
    with pytest.raises(FileNotFoundError, match=r"official split 5: .*index_test_05\.csv not found.*rmd17\.tar\.bz2"):
        ds.official_split(5)
    for k in (0, 6, "3", True):
        with pytest.raises(ValueError, match=r"must be one of \[1, 2, 3, 4, 5\]"):
            ds.official_split(k)
    raw = tmp_path / "md17" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared_data / "md17" / "md17_ethanol.npz", raw / "md17_ethanol.npz")
    with pytest.raises(ValueError, match=r"official splits exist for rMD17 only \('revised ethanol'\)"):
        MD17(tmp_path / "md17", "ethanol").official_split(1)


def _archive(path: Path, arrays, splits, with_splits: bool = True) -> Path:
    """An ``rmd17.tar.bz2`` in the published layout: ethanol's npz real, the other nine tiny placeholders."""
    placeholder = _npz_bytes({k: v[:2] if v.ndim > 1 else v for k, v in arrays.items()})
    members = {}
    for name in RMD17_FILES.values():
        members[f"rmd17/npz_data/{name}"] = _npz_bytes(arrays) if name == "rmd17_ethanol.npz" else placeholder
    if with_splits:
        for k, (train, test) in splits.items():
            members[f"rmd17/splits/index_train_{k:02d}.csv"] = _split_text(train).encode()
            members[f"rmd17/splits/index_test_{k:02d}.csv"] = _split_text(test).encode()
    members["rmd17/readme.txt"] = b"revised MD17\n"
    with tarfile.open(path, "w:bz2") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_split_files_are_unpacked_with_the_archive(tmp_path, rmd17_arrays, no_network):
    splits = published_splits()
    raw = tmp_path / "raw"
    raw.mkdir()
    _archive(raw / "rmd17.tar.bz2", rmd17_arrays, splits)
    ds = MD17(tmp_path, "revised ethanol")  # an archive placed by hand: unpacked, no network
    assert (raw / "rmd17" / "splits" / "index_train_03.csv").is_file()
    train, test = ds.official_split(3)
    assert train.tolist() == splits[3][0].tolist() and test.tolist() == splits[3][1].tolist()


def test_an_archive_without_the_split_files_is_refused(tmp_path, rmd17_arrays, no_network):
    raw = tmp_path / "raw"
    raw.mkdir()
    _archive(raw / "rmd17.tar.bz2", rmd17_arrays, published_splits(), with_splits=False)
    with pytest.raises(DownloadVerificationError, match=r"lacks \[.*index_train_01\.csv"):
        MD17(tmp_path, "revised ethanol")


# ---------------------------------------------------------------------------------------- the protocol
def _train_flags(root: Path, out: Path, *extra: str, tiny=()) -> list:
    return [
        "train",
        "md17",
        "--molecule",
        "revised ethanol",
        "--root",
        str(root),
        "--out",
        str(out),
        "--seed",
        "2",
        *extra,
        *tiny,
    ]


def test_train_md17_split_3_uses_the_published_frames(tmp_path, rmd17_arrays, load_repo_file, monkeypatch):
    from pyg_schnet.cli import main
    from pyg_schnet.io.records import sha256_file

    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    tiny = load_repo_file("tests/train/_trainer_tiny_data.py").TINY_FLAGS
    splits = published_splits(n_train=200, n_test=100)
    root = write_rmd17_root(tmp_path / "rmd17", rmd17_arrays, splits)
    out = tmp_path / "run"
    flags = ["--split", "3", "--n-train", "200", "--n-val", "100", "--max-epochs", "1"]
    results = main(_train_flags(root, out, *flags, tiny=tiny))
    assert "official split 3" in results["row"] and results["data"]["dataset"] == "rMD17"
    record = results["data"]["official_split"]
    assert record["k"] == 3
    folder = root / "raw" / "rmd17" / "splits"
    assert [Path(f["path"]).name for f in record["files"]] == ["index_train_03.csv", "index_test_03.csv"]
    assert [f["sha256"] for f in record["files"]] == [
        sha256_file(folder / "index_train_03.csv"),
        sha256_file(folder / "index_test_03.csv"),
    ]
    assert results["split"]["n_train"] == 200 and results["split"]["n_val"] == 100 and results["split"]["n_test"] == 100
    with np.load(out / "split.npz") as saved:
        train, val, test = saved["train"], saved["val"], saved["test"]
    assert train.tolist() == splits[3][0].tolist() and test.tolist() == splits[3][1].tolist()
    assert val.size == 100 and not set(val) & (set(train) | set(test))
    assert results["test"]["num_molecules"] == 100


def test_validation_comes_from_the_frames_in_neither_list(rmd17_root):
    from pyg_schnet.experiments.protocols.md17 import official_split_indices

    ds = MD17(rmd17_root, "revised ethanol")
    split, note = official_split_indices(ds, 1, n_val=None, seed=0)
    assert "only 250 frames lie outside the official split 1: using 250 validation frames instead of 1000" in note
    outside = set(range(1500)) - set(split.train.tolist()) - set(split.test.tolist())
    assert sorted(split.val.tolist()) == sorted(outside)
    again, _ = official_split_indices(ds, 1, n_val=40, seed=5)
    assert again.val.numel() == 40 and set(again.val.tolist()) <= outside
    assert torch.equal(again.val, official_split_indices(ds, 1, n_val=40, seed=5)[0].val)
    with pytest.raises(ValueError, match=r"--n-val must lie in 1\.\.250"):
        official_split_indices(ds, 1, n_val=251, seed=0)


@pytest.mark.parametrize(
    "molecule, flags, message",
    [
        ("ethanol", ["--split", "3"], r"--split 3: official splits exist for rMD17 only .*'ethanol' has none"),
        ("revised ethanol", ["--split", "2", "--n-train", "500"], r"--n-train must be 1000, got 500"),
        ("revised ethanol", ["--split", "2", "--n-test", "10"], r"--n-test cannot be combined with --split 2"),
        ("revised ethanol", ["--split", "2", "--unique-frames"], r"--unique-frames cannot be combined with --split 2"),
    ],
)
def test_split_flag_refusals(rmd17_root, tmp_path, molecule, flags, message):
    from pyg_schnet.cli import main

    out = tmp_path / "run"
    argv = _train_flags(rmd17_root, out, *flags)
    argv[argv.index("revised ethanol")] = molecule
    with pytest.raises(ValueError, match=message):
        main(argv)
    assert not out.exists()
    if "--n-train" not in flags:  # refused before the data set is opened: nothing processed
        assert not (rmd17_root / "processed").exists()
