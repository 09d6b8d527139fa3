"""benchmarks/md17.py on an npz whose frames repeat: a warning by default, ``--unique-frames`` keeps every
copy of a frame out of all but one set (issue 20, item 11)."""

from pathlib import Path

import numpy as np
import pytest
from _trainer_tiny_data import TINY_FLAGS

from pyg_schnet.datasets.errors import DuplicateFramesWarning
from pyg_schnet.experiments.protocols.md17 import main


def repeated_npz(shared_data: Path, folder: Path) -> Path:
    """The first 300 real ethanol frames, then frames 0-99 again (400 frames, 100 repeats)."""
    source = shared_data / "md17" / "md17_ethanol.npz"
    if not source.exists():
        pytest.skip(f"{source} not found")
    real = dict(np.load(source))
    take = np.concatenate([np.arange(300), np.arange(100)])
    for key in ("R", "E", "F"):
        real[key] = real[key][take]
    folder.mkdir()
    path = folder / "md17_ethanol.npz"
    np.savez(path, **real)
    return path


def argv(npz: Path, tmp_path: Path, *extra: str) -> list:
    return [
        "--raw-file",
        str(npz),
        "--root",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "--n-train",
        "100",
        "--n-val",
        "50",
        "--n-test",
        "100",
        "--max-epochs",
        "1",
        "--quiet",
        *TINY_FLAGS,
        *extra,
    ]


def frame_keys(npz: Path, indices: np.ndarray) -> set:
    positions = np.load(npz)["R"]
    return {positions[i].tobytes() for i in indices}


def test_repeated_frames_warn_without_unique_frames(shared_data, tmp_path):
    npz = repeated_npz(shared_data, tmp_path / "src")
    with pytest.warns(DuplicateFramesWarning, match=r"100 .*repeat|repeat.* 100"):
        main(argv(npz, tmp_path))


def test_unique_frames_keeps_copies_out_of_two_sets(shared_data, tmp_path):
    npz = repeated_npz(shared_data, tmp_path / "src")
    results = main(argv(npz, tmp_path, "--unique-frames"))
    assert results["data"]["num_frames"] == 400 and results["data"]["num_distinct_frames"] == 300
    split = np.load(tmp_path / "out" / "split.npz")
    train, val, test = (frame_keys(npz, split[name]) for name in ("train", "val", "test"))
    assert len(train) == 100 and len(val) == 50 and len(test) == 100  # no set holds a frame twice
    assert not (train & test) and not (train & val) and not (val & test)
    # every index drawn is the first copy of its frame
    assert max(np.concatenate([split["train"], split["val"], split["test"]])) < 300
