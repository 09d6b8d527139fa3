"""benchmarks/epoch_time.py --quick runs one epoch end to end for pyg-schnet's Trainer and PyG's SchNet in
its minimal loop (SchNetPack too where its training stack imports, else it is skipped with the reason);
no timing checks, only that each run did the epoch it reports."""

import csv
import math

import numpy as np
import pytest

from harness.epoch import EpochSetting, ratios, split_indices


def test_split_is_the_one_md17_draws_for_the_ethanol_excerpt(shared_data):
    """N = 1,000 from the 1,500-frame file: 250 validation, 250 test (md17_split_sizes), disjoint, seeded."""
    setting = EpochSetting(npz=shared_data / "md17" / "md17_ethanol.npz", n_train=1000, n_val=250)
    split = split_indices(setting, 1500)
    assert {k: len(v) for k, v in split.items()} == {"train": 1000, "val": 250, "test": 250}
    assert len(np.unique(np.concatenate(list(split.values())))) == 1500
    again = split_indices(setting, 1500)
    assert all(np.array_equal(split[k], again[k]) for k in split)


def test_ratios_are_peer_over_ours():
    medians = {"ours": {"epoch_s": 2.0, "total_s": 4.0}, "pyg": {"epoch_s": 5.0, "total_s": 6.0}}
    assert ratios(medians) == {"pyg": {"epoch_s": 2.5, "total_s": 1.5}}


def test_quick_epoch_runs_every_step_and_validates(shared_data, tmp_path, capsys, load_repo_file):
    bench = load_repo_file("benchmarks/epoch_time.py")
    npz = shared_data / "md17" / "md17_ethanol.npz"
    report = bench.main(["--quick", "--npz", str(npz), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")])
    out = capsys.readouterr().out

    measured = set(report["medians"])
    assert {"ours", "pyg"} <= measured
    if "schnetpack" not in measured:  # not importable outside its side environment: skipped, with the reason
        assert report["skipped"]["schnetpack"].strip()
        assert "skipped: " in report["table"]
    assert report["split"] == {"train": 96, "val": 32, "test": 1500 - 128}
    for name in measured:
        (run,) = report["runs"][name]
        assert run["steps"] == math.ceil(96 / 32), name  # every training batch of the epoch stepped
        for part in ("processing_s", "setup_s", "train_s", "val_s", "loading_s"):
            assert run[part] > 0, (name, part)
        assert run["total_s"] >= run["processing_s"] + run["setup_s"] + run["epoch_s"] - 1e-9, name
        # a standardised model after one epoch: within a few kcal/mol (the energies' std is about 4.3),
        # not the 97,000 kcal/mol of a model that does not know the energies' offset
        assert 0 < run["val_energy_mae"] < 30, (name, run["val_energy_mae"])

    # ours' epoch is the one the Trainer recorded for benchmarks/md17.py (its log.csv), training + validation
    with open(tmp_path / "w" / "ours-0" / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and int(rows[0]["epoch"]) == 1
    assert report["runs"]["ours"][0]["epoch_s"] == pytest.approx(float(rows[0]["epoch_s"]), rel=1e-6)

    assert "PyG's SchNet in a minimal loop (PyG has no training code of its own)" in out
    assert "split seed 0: 96 training, 32 validation frames" in out and "Machine: " in out
    assert (tmp_path / "out" / "epoch_time.json").is_file() and (tmp_path / "out" / "epoch_time.md").is_file()
