"""``torchrun --standalone --nproc-per-node 2 benchmarks/md17.py`` on the real ethanol excerpt (CPU, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _trainer_tiny_data import TINY_FLAGS

from pyg_schnet.train import load_model

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_run_the_md17_benchmark(shared_data, tmp_path):
    npz_path = shared_data / "md17" / "md17_ethanol.npz"
    if not npz_path.exists():
        pytest.skip(f"{npz_path} not found")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(REPO / "benchmarks" / "md17.py"),
        "--raw-file",
        str(npz_path),
        "--root",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--n-train",
        "40",
        "--n-val",
        "11",
        "--n-test",
        "9",
        "--batch-size",
        "8",
        "--max-epochs",
        "1",
        "--dist-timeout",
        "120",
        *TINY_FLAGS,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # rank 0 alone prints: one summary line, not two
    assert proc.stdout.count("training stopped (max_epochs) after 1 epochs, 5 steps") == 1
    assert "2 processes (gloo)" in proc.stdout

    results = json.loads((out / "results.json").read_text())
    assert results["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert results["training"]["steps"] == 5  # 40 molecules, global batch 8: the one-process step count
    assert results["split"]["n_val"] == 11 and results["test"]["num_molecules"] == 9  # no padding
    assert results["training"]["best_val"]["num_molecules"] == 11
    assert len((out / "log.csv").read_text().splitlines()) == 2
    assert load_model(out / "model.pt").config["hidden_channels"] == 16
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
