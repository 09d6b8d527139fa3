"""benchmarks/file_reading.py --quick writes its extended XYZ file, measures every reader in its own process
and prints the docs block; no timing checks, only that each reader read every frame it reports."""

from __future__ import annotations

import json

import numpy as np


def test_quick_run_reads_every_frame_with_each_reader(shared_data, tmp_path, capsys, load_repo_file):
    bench = load_repo_file("benchmarks/file_reading.py")
    npz = shared_data / "md17" / "md17_ethanol.npz"
    report = bench.main(["--quick", "--npz", str(npz), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert report["frames"] == 300 and set(report["runs"]) == {"ase", "ours", "ours_reopen"}
    for name, runs in report["runs"].items():
        (run,) = runs
        assert run["frames"] == 300 and run["seconds"] > 0, name
    # the data set's tensors: z (int64), pos, force (float32), energy (float64), file/frame index (int64)
    atoms = 300 * 9
    assert report["runs"]["ours"][0]["tensor_bytes"] == atoms * (8 + 12 + 12) + 300 * (8 + 8 + 8)
    assert (
        "| reader | frames | seconds (median) | frames / s | peak memory above the imports |" in out
        and "Machine: " in out
    )
    assert json.loads((tmp_path / "out" / "file_reading.json").read_text())["frames"] == 300
    # the file holds the real frames in eV: frame 0 is the npz's first frame
    import ase.io
    from ase import units

    first = ase.io.read(tmp_path / "w" / "ethanol_300.extxyz", 0)
    with np.load(npz) as f:
        assert np.allclose(first.positions, f["R"][0], atol=1e-8)
        assert np.isclose(first.get_potential_energy(), f["E"][0, 0] * units.kcal / units.mol, rtol=1e-12, atol=0)
