"""benchmarks/md_call.py runs end to end with two rounds (no timing checks); it refuses to time an
MDEvaluator that disagrees with the model, so a run also checks both modes against it in float32."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_md_call_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_md_call", ROOT / "benchmarks" / "md_call.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--reps", "2"])
    out = capsys.readouterr().out
    assert "| paper |" in out and "| common |" in out and "command: python benchmarks/md_call.py --reps 2" in out
