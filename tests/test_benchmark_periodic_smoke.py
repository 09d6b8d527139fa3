"""benchmarks/periodic.py runs end to end on tiny sizes (no timing checks): every backend it times agrees
with ASE's pairs, and the memory probe prints its measurement beside the estimate."""


def test_neighbours_and_memory_smoke(capsys, load_repo_file):
    bench = load_repo_file("benchmarks/periodic.py")
    bench.main(
        ["neighbours", "--sizes", "40", "--repeats", "1", "--backends", "vesin", "torch_images", "torch_cluster"]
    )
    out = capsys.readouterr().out
    assert "| 40 |" in out and "wrong" not in out and "64 x 8 atoms" in out
    # the plain-PyTorch search is an independent reference: same pairs as ASE, shifts included
    import numpy as np

    pos, cell = bench.random_structure(30, 0.1, seed=1)
    pbc = np.array([True, True, True])
    as_set = lambda r: set(zip(r[0].tolist(), r[1].tolist(), map(tuple, np.asarray(r[2]).tolist())))  # noqa: E731
    assert as_set(bench._torch_images(pos, cell, pbc, 5.0)) == as_set(bench._ase(pos, cell, pbc, 5.0))
    bench.main(["memory", "--atoms", "30", "--mode", "forces"])
    assert "30 atoms, forces: measured" in capsys.readouterr().out
