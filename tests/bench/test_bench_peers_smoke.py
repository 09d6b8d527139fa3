"""benchmarks/peers.py --quick runs end to end, writes its JSON, tables and plots, and fills a docs
file's generated blocks (no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_peers_run_fills_the_docs_blocks(tmp_path):
    docs = tmp_path / "docs" / "bench.md"
    docs.parent.mkdir()
    docs.write_text(
        "# t\n<!-- bench:peers:begin -->\nold\n<!-- bench:peers:end -->\n"
        "<!-- bench:work:begin -->\nold\n<!-- bench:work:end -->\n"
        "<!-- bench:scale:begin -->\nold\n<!-- bench:scale:end -->\nend\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peers.py"),
            "--quick",
            "--configs",
            "paper",
            "--cases",
            "ethanol_forces,md_call",
            "--scale-sizes",
            "8,16",
            "--out",
            str(out),
            "--docs",
            str(docs),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "peers.json").read_text())
    assert report["meta"]["threads"] == 1 and report["meta"]["command"].startswith("python benchmarks/peers.py")
    rows = {(r["case"], r["impl"]): r for r in report["results"]}
    for case in ("ethanol_forces", "md_call"):
        for impl in ("ours_sparse", "pyg"):
            assert rows[case, impl]["median_s"] > 0
        spk = rows[case, "schnetpack"]
        assert ("median_s" in spk) == (report["meta"]["versions"]["schnetpack"] is not None)
    assert rows["ethanol_forces", "ours_sparse"]["batch_size"] == 4
    assert {q["case"] for q in report["ratios"]} == {"ethanol_forces", "md_call"}
    work = json.loads((out / "work.json").read_text())
    assert {(r["case"], r["impl"]) for r in work["results"]} >= {
        ("ethanol_forces", "ours_sparse"),
        ("ethanol_forces", "pyg"),
    }
    assert all(r["gflop"] > 0 and 0 < r["matmul_share"] < 1 for r in work["results"])
    scale = json.loads((out / "scale.json").read_text())
    assert {r["atoms"] for r in scale["results"]} == {8, 16}
    assert set(scale["slopes"]) == {"inference", "md_call", "train_forces"}
    text = docs.read_text()
    assert "old" not in text and text.startswith("# t\n") and text.endswith("end\n")
    assert "| paper | ethanol, E+F training |" in text and "Log-log slopes" in text
    assert "| paper | ethanol, E+F training | pyg-schnet |" in text and "GFLOP / step" in text
    for png in (docs.parent / "img" / "peers.png", docs.parent / "img" / "scale.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
