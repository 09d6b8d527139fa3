"""benchmarks/md17.py end to end on the real ethanol excerpt, and the demo entry point on its xTB data."""

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _trainer_tiny_data import TINY_FLAGS

from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.paper_values import iso17_row, md17_row, qm9_row
from pyg_schnet.experiments.protocols.md17 import md17_split_sizes
from pyg_schnet.train import load_model

REPO = Path(__file__).resolve().parents[2]


def test_md17_script_two_epochs_writes_complete_results(shared_data, tmp_path):
    npz_path = shared_data / "md17" / "md17_ethanol.npz"
    if not npz_path.exists():
        pytest.skip(f"{npz_path} not found")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "md17.py"),
        "--raw-file",
        str(npz_path),
        "--root",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--n-train",
        "1000",
        "--max-epochs",
        "2",
        "--seed",
        "3",
        *TINY_FLAGS,
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 1,500 frames cannot hold N + 1,000 + 1,000: the documented 250 / 250 split, announced
    assert "using 250 validation frames" in proc.stdout
    assert "paper 0.080" in proc.stdout and "GDML 0.150" in proc.stdout and "paper 0.390" in proc.stdout

    results = json.loads((out / "results.json").read_text())
    for key in (
        "config",
        "data",
        "split",
        "test",
        "training",
        "paper",
        "wall_time_s",
        "device",
        "torch_version",
        "command",
        "date",
    ):
        assert key in results, key
    assert results["torch_version"] == torch.__version__
    assert "benchmarks/md17.py" in results["command"] and "--n-train 1000" in results["command"]
    record = results["data"]["files"][0]
    assert record["sha256"] == hashlib.sha256(npz_path.read_bytes()).hexdigest()
    assert results["split"] == {
        "seed": 3,
        "n_train": 1000,
        "n_val": 250,
        "n_test": 250,
        "test_sets": {"test": 250},
        "file": "split.npz",
    }
    assert results["training"]["epochs"] == 2 and results["training"]["steps"] == 64
    assert results["paper"]["energy_mae"] == 0.08 and results["paper"]["gdml_force_mae"] == 0.79
    test = results["test"]
    for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse"):
        assert math.isfinite(test[key]) and test[key] > 0, key
    assert test["num_molecules"] == 250
    assert len((out / "log.csv").read_text().splitlines()) == 3
    for png in ("learning_curves.png", "parity_test.png"):
        assert (out / png).stat().st_size > 1000

    # the split file and the saved EMA model reproduce the reported test errors from the raw npz
    split = np.load(out / "split.npz")
    assert [split[k].size for k in ("train", "val", "test")] == [1000, 250, 250]
    assert len(set(split["train"]) | set(split["val"]) | set(split["test"])) == 1500
    model = load_model(out / "model.pt")
    assert not model.training and model.config["hidden_channels"] == 16
    raw = np.load(npz_path)
    idx = split["test"]
    z = torch.as_tensor(raw["z"]).repeat(len(idx))
    pos = torch.as_tensor(raw["R"][idx], dtype=torch.float32).reshape(-1, 3)
    batch = torch.arange(len(idx)).repeat_interleave(raw["z"].size)
    energy, forces = model.energy_and_forces(z, pos, batch)
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()
    e_mae = np.abs(energy.double().numpy() - raw["E"][idx, 0]).mean()
    f_mae = np.abs(forces.double().numpy() - raw["F"][idx].reshape(-1, 3)).mean()
    assert e_mae == pytest.approx(test["energy_mae"], rel=1e-5)
    assert f_mae == pytest.approx(test["force_mae"], rel=1e-5)


def test_demo_entry_point_runs_on_embedded_xtb_data(tmp_path, capsys):
    if not DEMO_DATA.exists():
        pytest.skip(f"demo data {DEMO_DATA} not generated yet")
    from pyg_schnet.experiments.demo.__main__ import main

    results = main(
        [
            "--out",
            str(tmp_path / "demo"),
            "--max-epochs",
            "1",
            "--n-train",
            "64",
            "--n-val",
            "32",
            "--n-test",
            "32",
            *TINY_FLAGS[:-3],
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "GFN2-xTB" in printed and "not the DFT" in printed
    assert results["benchmark"] == "demo" and results["split"]["n_train"] == 64
    assert results["data"]["files"][0]["resolved"] == str(DEMO_DATA)
    assert math.isfinite(results["test"]["force_mae"])
    assert (tmp_path / "demo" / "model.pt").exists()


def test_md17_split_sizes_follow_the_paper_or_say_why_not():
    assert md17_split_sizes(555_092, 1000) == (1000, 1000, 554_092 - 1000, "")
    n_train, n_val, n_test, note = md17_split_sizes(1500, 1000)
    assert (n_train, n_val, n_test) == (1000, 250, 250) and "250 validation" in note
    assert md17_split_sizes(1500, 1000, n_val=100, n_test=50)[:3] == (1000, 100, 50)
    with pytest.raises(ValueError, match="keep any for testing"):
        md17_split_sizes(1500, 1000, n_val=500)
    with pytest.raises(ValueError, match="--n-test must lie in 1..400"):
        md17_split_sizes(1500, 1000, n_val=100, n_test=401)


def test_paper_rows_are_looked_up_by_molecule_size_and_rho():
    assert md17_row("ethanol", 1000, 100.0) == {
        "energy_mae": 0.08,
        "force_mae": 0.39,
        "gdml_energy_mae": 0.15,
        "gdml_force_mae": 0.79,
    }
    assert md17_row("salicylic acid", 1000, 0.0)["energy_mae"] == 3.27
    assert md17_row("ethanol", 50_000, 100.0) == {"energy_mae": 0.05, "force_mae": 0.05}
    assert md17_row("ethanol", 700, 100.0) == {}
    assert qm9_row(110_462) == {"energy_mae": 0.31} and qm9_row(1234) == {}
    assert iso17_row("test_other", 0.0)["energy_mae"] == 3.11
    assert iso17_row("test_within", 100.0)["force_mae"] == 1.00
