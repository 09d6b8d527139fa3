"""benchmarks/md_call.py runs end to end with two rounds (no timing checks); it refuses to time an
MDEvaluator that disagrees with the model, so a run also checks both modes against it in float32."""


def test_md_call_smoke(capsys, load_repo_file):
    bench = load_repo_file("benchmarks/md_call.py")
    bench.main(["--reps", "2"])
    out = capsys.readouterr().out
    assert "| paper |" in out and "| common |" in out and "command: python benchmarks/md_call.py --reps 2" in out
