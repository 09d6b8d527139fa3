"""``pyg-schnet train md22`` end to end on a file in the published MD22 layout, and its bad input.

No MD22 file is available offline: the file is the real 1,500-frame MD17 ethanol excerpt written as
``md22_Ac-Ala3-NHMe.npz`` (keys ``R``, ``z``, ``E``, ``F`` plus MD22's scalar strings) and linked into the
data root with ``--raw-file``, as the MD17 tests do; ``PYG_SCHNET_OFFLINE=1`` forbids any download.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _trainer_tiny_data import TINY_FLAGS

from pyg_schnet.cli import main
from pyg_schnet.datasets import MD22


@pytest.fixture
def md22_file(tmp_path, shared_data) -> Path:
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        arrays = {k: f[k] for k in ("R", "z", "E", "F")}
    arrays.update(name=np.array("Ac-Ala3-NHMe"), theory=np.array("PBE+MBD"), e_unit=np.array("kcal/mol"))
    path = tmp_path / "shared" / "md22_Ac-Ala3-NHMe.npz"
    path.parent.mkdir()
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _flags(raw_file: Path, root: Path, out: Path, molecule: str = "Ac-Ala3-NHMe") -> list:
    return [
        "train",
        "md22",
        "--molecule",
        molecule,
        "--raw-file",
        str(raw_file),
        "--root",
        str(root),
        "--out",
        str(out),
        "--n-train",
        "100",
        "--n-val",
        "50",
        "--n-test",
        "50",
        "--max-epochs",
        "2",
        "--seed",
        "4",
        *TINY_FLAGS,
    ]


def test_train_md22_two_epochs(md22_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    out, root = tmp_path / "run", tmp_path / "data"
    results = main(_flags(md22_file, root, out))
    assert results["benchmark"] == "md22" and results["command"].startswith("pyg-schnet train md22")
    assert results["row"].startswith("MD22 Ac-Ala3-NHMe, N = 100")
    assert results["data"]["dataset"] == "MD22" and results["data"]["molecule"] == "Ac-Ala3-NHMe"
    record = results["data"]["files"][0]
    assert record["sha256"] == hashlib.sha256(md22_file.read_bytes()).hexdigest()
    assert Path(record["path"]) == root / "raw" / "md22_Ac-Ala3-NHMe.npz" and Path(record["resolved"]) == md22_file
    assert results["paper"] == {}  # the SchNet paper (2017) has no MD22 numbers
    assert results["split"]["n_train"] == 100 and results["split"]["n_val"] == 50 and results["split"]["n_test"] == 50
    assert results["training"]["epochs"] == 2
    assert json.loads((out / "results.json").read_text())["benchmark"] == "md22"
    # the test errors are those of the saved split's test frames
    with np.load(out / "split.npz") as split:
        test = torch.from_numpy(split["test"])
    ds = MD22(root, "Ac-Ala3-NHMe")
    assert results["test"]["num_molecules"] == test.numel() == 50
    assert np.isfinite(results["test"]["energy_mae"]) and np.isfinite(results["test"]["force_mae"])
    assert len(ds[test]) == 50
    # pyg-schnet evaluate reads MD22 as the training did: the same test errors from model.pt and split.npz
    again = main(
        ["evaluate", str(out / "model.pt"), "--dataset", "md22", "--molecule", "Ac-Ala3-NHMe", "--root", str(root)]
        + ["--split", str(out / "split.npz"), "--subset", "test"]
    )
    assert again["num_molecules"] == 50
    assert abs(again["energy_mae"] - results["test"]["energy_mae"]) <= 1e-6 * results["test"]["energy_mae"]


def test_unknown_md22_molecule_lists_the_seven_before_any_file(md22_file, tmp_path):
    out, root = tmp_path / "run", tmp_path / "data"
    with pytest.raises(ValueError, match=r"unknown MD22 molecule 'caffeine'; choose from \['Ac-Ala3-NHMe', 'DHA'"):
        main(_flags(md22_file, root, out, molecule="caffeine"))
    assert not out.exists() and not root.exists()


def test_md22_has_no_official_split_flag(md22_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*_flags(md22_file, tmp_path / "d", tmp_path / "o"), "--split", "1"])
    assert "unrecognized arguments: --split 1" in capsys.readouterr().err
