"""benchmarks/export.py runs end to end in its quick mode (no timing checks); it refuses to time an
artefact or calculator that disagrees with the model, so a run also checks every variant against it."""


def test_export_benchmark_smoke(capsys, load_repo_file):
    bench = load_repo_file("benchmarks/export.py")
    bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "| paper | pt2 | export " in out and "| paper | torchscript | export " in out
    for variant in ("model", "ase", "pt2", "torchscript", "pt2-energy+autograd"):
        assert f"| {variant} |" in out
    assert "command: python benchmarks/export.py --quick" in out
