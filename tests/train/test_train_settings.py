"""Issue 8, defects 12 and 13: every setting is validated, with a message naming it, before anything is
written (output folder, split file, data folder, raw-file link)."""

import pytest
import torch

from pyg_schnet.datasets.raw_files import raw_file_link
from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.protocols import md17
from pyg_schnet.train import TrainConfig

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("rho", float("nan"), r"TrainConfig: rho must be a finite number in \[0, inf\), got nan"),
        ("rho", -1.0, r"rho must be a finite number"),
        ("lr", -0.001, r"TrainConfig: lr must be a finite number in \(0, inf\), got -0\.001"),
        ("lr", float("nan"), r"lr must be a finite number .*got nan"),
        ("lr", 0.0, r"lr must be a finite number in \(0, inf\), got 0\.0"),
        ("lr_decay", 0.0, r"lr_decay must be a finite number in \(0, 1\], got 0\.0"),
        ("lr_decay", 1.5, r"lr_decay must be a finite number in \(0, 1\]"),
        ("lr_decay_steps", 0, r"lr_decay_steps must be a positive integer, got 0"),
        ("ema_decay", float("nan"), r"ema_decay must be a finite number in \[0, 1\], got nan"),
        ("batch_size", 0, r"batch_size must be a positive integer"),
        ("eval_batch_size", 2.5, r"eval_batch_size must be a positive integer, got 2\.5"),
        ("max_minutes", float("nan"), r"max_minutes \(or None\) must be a finite number"),
        ("max_epochs", -1, r"max_epochs \(or None\) must be an integer >= 0"),
        ("patience", 0, r"patience \(or None\) must be a positive integer"),
        ("device", "banana", r"TrainConfig: device 'banana' is not a torch device"),
        pytest.param(
            "device",
            "cuda",
            r"device 'cuda' was asked for, but no CUDA GPU is available",
            marks=pytest.mark.skipif(not NO_CUDA, reason="a GPU is present"),
        ),
    ],
)
def test_train_config_refuses_bad_settings(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--lr", "-0.001"], r"lr must be a finite number"),
        (["--lr", "nan"], r"lr must be a finite number"),
        (["--lr", "0"], r"lr must be a finite number"),
        (["--lr-decay", "0"], r"lr_decay must be a finite number"),
        (["--rho", "nan"], r"rho must be a finite number"),
        (["--hidden-channels", "0"], r"SchNet: hidden_channels must be a positive integer, got 0"),
        (["--cutoff", "-2"], r"SchNet: cutoff must be a finite number"),
        (["--threads", "0"], r"--threads must be a positive integer"),
        pytest.param(
            ["--device", "cuda"],
            r"no CUDA GPU is available",
            marks=pytest.mark.skipif(not NO_CUDA, reason="a GPU is present"),
        ),
    ],
)
def test_benchmark_refuses_bad_flags_before_writing_anything(tmp_path, flags, match):
    # these used to leave split.npz (and the raw-file link, the processed data) behind
    argv = [
        "--raw-file",
        str(DEMO_DATA),
        "--root",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "--max-epochs",
        "1",
        "--no-progress",
        *flags,
    ]
    with pytest.raises(ValueError, match=match):
        md17.main(argv)
    assert list(tmp_path.iterdir()) == []


def test_raw_file_that_cannot_be_opened_leaves_no_link(tmp_path):
    # a text file given as --raw-file left a link that blocked the next run with the right file
    text = tmp_path / "notes.npz"
    text.write_text("hello\n")
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=r"md17_ethanol\.npz"):
        md17.main(["--raw-file", str(text), "--root", str(root), "--out", str(tmp_path / "out"), "--no-progress"])
    link = root / "raw" / md17.raw_file_name("ethanol")
    assert not link.exists() and not link.is_symlink()
    assert not (tmp_path / "out").exists()
    with raw_file_link(DEMO_DATA, root, md17.raw_file_name("ethanol")) as target:
        assert target.resolve() == DEMO_DATA
    assert link.is_symlink()  # kept when the body succeeds


def test_raw_file_link_keeps_a_link_it_did_not_create(tmp_path):
    root = tmp_path / "data"
    name = md17.raw_file_name("ethanol")
    with raw_file_link(DEMO_DATA, root, name):
        pass
    with pytest.raises(RuntimeError):
        with raw_file_link(DEMO_DATA, root, name):
            raise RuntimeError("the data set failed for another reason")
    assert (root / "raw" / name).is_symlink()


def test_standardization_refuses_a_non_finite_training_energy():
    from _trainer_tiny_data import synthetic_molecules, tiny_model

    from pyg_schnet.train import standardize_model

    data = synthetic_molecules(8, seed=1)
    data[5].energy = torch.tensor([float("nan")], dtype=torch.float64)
    model = tiny_model()
    with pytest.raises(ValueError, match=r"training example 5 has energy nan: cannot standardise"):
        standardize_model(model, data)
    assert float(model.mean) == 0.0  # nothing was set


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_train_config_refuses_a_seed_torch_and_numpy_cannot_take(seed):
    from pyg_schnet.train import TrainConfig

    with pytest.raises(ValueError, match=r"seed must be between 0 and 2\*\*64 - 1"):
        TrainConfig(seed=seed)
