"""benchmarks/batching.py --quick runs end to end and writes the promised columns (no timing checks)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from harness.timing import PeakMemory, profiler_log_filtered

ROOT = Path(__file__).resolve().parents[1]

# what torch.profiler prints by itself: kineto's start/stop lines (two per profile, on file descriptor 2),
# the allocator's warning, and the operator table of prof.key_averages().table()
PROFILER_LINES = ("USDT:", "STAGE:", "profiler_start", "profiler_stop", "allocated before the profiling", "Self CPU")


def assert_no_profiler_output(text):
    for line in text.splitlines():
        assert not any(marker in line for marker in PROFILER_LINES), line
        assert not (line.startswith("-----") and "Name" in line), line


def test_quick_run_writes_json_table_and_plot(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "batching.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the peak memory of every step is measured under torch.profiler: its log lines stay off the terminal
    assert_no_profiler_output(proc.stdout)
    assert_no_profiler_output(proc.stderr)
    assert "peak " in proc.stdout and " MiB)" in proc.stdout
    report = json.loads((out / "batching.json").read_text())
    meta = report["meta"]
    assert meta["hyper_parameters"]["num_gaussians"] == 301 and meta["hyper_parameters"]["cutoff"] == 30.0
    assert meta["threads"] == 1 and meta["device_type"] == "cpu"

    rows = report["results"]
    keys = {(r["case"], r["impl"], r["mode"]) for r in rows}
    for case in ("ethanol", "qm9"):
        for impl in ("ours_sparse", "ours_dense", "pyg", "schnetpack"):
            for mode in ("train_energy", "train_forces", "inference"):
                assert (case, impl, mode) in keys
    for r in rows:
        assert r["batch_size"] == 4 and r["max_atoms"] >= 9
        if r.get("skipped"):
            assert isinstance(r["skipped"], str) and r["skipped"]
            continue
        assert r["molecules_per_s"] > 0 and r["median_s"] > 0 and len(r["times_s"]) == 1
        assert r["peak_memory_mib"] is None or r["peak_memory_mib"] >= 0
    # both of our paths and PyG's SchNet always run; SchNetPack is optional
    measured = {r["impl"] for r in rows if not r.get("skipped")}
    assert {"ours_sparse", "ours_dense", "pyg"} <= measured
    assert ("schnetpack" in measured) == ("schnetpack" not in meta["unavailable"])
    for q in report["ratios"]:
        assert q["ours_sparse_vs_pyg"] > 0 and q["ours_dense_vs_ours_sparse"] > 0
    assert len(report["ratios"]) == 6  # 2 cases x 3 modes

    table = (out / "batching.md").read_text()
    assert "sparse/PyG" in table and "| qm9 |" in table
    assert (out / "batching.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profiler_log_filtered_drops_the_profilers_lines_and_keeps_the_rest(capfd):
    with profiler_log_filtered():
        os.write(2, b"USDT:2026-12-03 10:27:12 1:1 SyncActivityProfilerHandler.cpp:52] profiler_start\n")
        os.write(2, b"a real error\n")
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real error" in err and "a Python warning" in err
    assert "USDT" not in err and "profiler_start" not in err


def test_peak_memory_still_measures_and_prints_nothing(capfd):
    with PeakMemory(torch.device("cpu")) as mem:
        keep = torch.ones(4 * 2**20 // 4)  # 4 MiB
        del keep
    out = capfd.readouterr()
    assert_no_profiler_output(out.out)
    assert_no_profiler_output(out.err)
    assert mem.mib is None or 3.9 <= mem.mib <= 16
