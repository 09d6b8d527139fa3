"""benchmarks/gpu.py: its CPU dry run goes through every part (peers at two batch sizes, the MD call
variants, the QM9-sized epoch) and writes its report; without CUDA a real run refuses with a message
(no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_goes_through_every_part_and_writes_the_report(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu.py"),
            "--dry-run",
            "--impls",
            "ours_sparse,pyg",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [part["meta"]["batch_size"] for part in report["peers"]] == [2, 4]
    cases = {(r["case"], r["impl"]) for r in report["peers"][0]["results"] if "median_s" in r}
    assert {("qm9_energy", "pyg"), ("md_call", "ours_sparse"), ("ethanol_forces", "ours_sparse")} <= cases
    variants = {r["variant"] for r in report["md"]["paper"]["results"]}
    assert {"ours MDEvaluator eager", "ours model.energy_and_forces", "PyG SchNet + autograd"} <= variants
    assert "CUDA graphs need a CUDA device" in report["md"]["paper"]["skipped"]["ours MDEvaluator CUDA graph"]
    epoch = {r["impl"]: r for r in report["epoch"]["results"]}
    assert epoch["ours_sparse"]["molecules"] == 64 and epoch["pyg"]["steps"] == 2
    text = (tmp_path / "gpu.md").read_text()
    assert "training batch 4" in text and "synthetic molecules (QM9's size distribution" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the real run would start")
def test_without_cuda_a_real_run_refuses_with_a_message(load_repo_file):
    bench = load_repo_file("benchmarks/gpu.py")
    with pytest.raises(SystemExit, match=r"no CUDA device here .* pass --dry-run"):
        bench.main(["--out", "unused"])
