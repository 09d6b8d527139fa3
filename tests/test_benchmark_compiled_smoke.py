"""benchmarks/compiled_inference.py and benchmarks/compiled_kernels.py run end to end on small sizes
(no timing checks); the kernel benchmark's switches take effect for each step and are restored."""

from __future__ import annotations

import json

import pytest

from pyg_schnet import backend
from pyg_schnet.models import compiled


@pytest.mark.skipif(compiled.compiler_unavailable(__import__("torch").device("cpu")) is not None, reason="no compiler")
def test_compiled_inference_quick_run_checks_and_times_the_compiled_md_call(load_repo_file, tmp_path, capsys):
    bench = load_repo_file("benchmarks/compiled_inference.py")
    rows = bench.main(["--quick", "--modes", "default", "--cases", "ethanol_md", "--json", str(tmp_path / "c.json")])
    (row,) = rows
    assert row["case"] == "ethanol_md" and row["mode"] == "default" and row["max_rel_difference"] <= 1e-10
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and row["compile_s"] >= 0
    assert json.loads((tmp_path / "c.json").read_text())["meta"]["dtype"] == "float64"
    assert "| ethanol MD call (MDEvaluator exact, paper config) | 9 | default |" in capsys.readouterr().out


def test_kernel_switches_are_set_per_step_and_restored(load_repo_file):
    bench = load_repo_file("benchmarks/compiled_kernels.py")
    saved = backend.USE_TORCH_SCATTER, backend.USE_TORCH_CLUSTER
    with bench.switches_restored():
        state = lambda: (backend.USE_TORCH_SCATTER, backend.USE_TORCH_CLUSTER)  # noqa: E731
        assert bench.with_kernels(state, False)() == (False, False)
        assert bench.with_kernels(state, True)() == (True, True)
    assert (backend.USE_TORCH_SCATTER, backend.USE_TORCH_CLUSTER) == saved


def test_compiled_kernels_quick_run_times_every_case(load_repo_file, capsys):
    bench = load_repo_file("benchmarks/compiled_kernels.py")
    report = bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--cluster-atoms", "40"])
    assert [r["case"] for r in report["results"]] == list(bench.CASE_NAMES)
    assert all(r["fallback_ms"] > 0 for r in report["results"])
    if report["meta"]["kernels_unavailable"] is None:
        assert all(r["ratio"] > 0 for r in report["results"])
    else:
        assert "not importable" in capsys.readouterr().out
