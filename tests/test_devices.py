"""One device check for every command, the trainer and the calculator: a device this machine lacks is a
clear ValueError naming who asked for it, before a file is read (it used to be a raw torch
AssertionError in the calculator and md, and a "cannot read the model file" in evaluate)."""

from __future__ import annotations

import pytest
import torch

from pyg_schnet import SchNet, save_model
from pyg_schnet.io.devices import resolve_device

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot be seen")

NO_CUDA = r"device 'cuda' was asked for, but no CUDA GPU is available here; use 'cpu'"


@pytest.fixture
def model_file(tmp_path):
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, rbf_stop=3.0, cutoff=3.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return save_model(model, tmp_path / "model.pt")


def test_resolve_device_checks_what_it_is_given():
    assert resolve_device(None) == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="here: " + NO_CUDA):
        resolve_device("cuda", "here")
    with pytest.raises(ValueError, match=r"'gpu0' is not a torch device"):
        resolve_device("gpu0")


def test_the_calculator_says_which_device_is_missing(model_file):
    from pyg_schnet.simulation.ase import SchNetCalculator

    with pytest.raises(ValueError, match=r"SchNetCalculator\(device=\.\.\.\): " + NO_CUDA):
        SchNetCalculator(model_file, device="cuda")


def test_evaluate_blames_the_device_not_the_model_file(model_file, tmp_path):
    from pyg_schnet.cli import main

    with pytest.raises(ValueError, match=r"pyg-schnet evaluate --device: " + NO_CUDA):
        main(["evaluate", str(model_file), "--dataset", "md17", "--root", str(tmp_path / "data"), "--device", "cuda"])


def test_md_says_which_device_is_missing(model_file, tmp_path):
    from ase.build import molecule
    from ase.io import write

    from pyg_schnet.cli import main

    write(tmp_path / "start.xyz", molecule("CH3CH2OH"))
    with pytest.raises(ValueError, match=NO_CUDA):
        main(
            [
                "md",
                str(model_file),
                str(tmp_path / "start.xyz"),
                "--steps",
                "2",
                "--device",
                "cuda",
                "--out",
                str(tmp_path / "md"),
            ]
        )
    assert not (tmp_path / "md").exists()


def test_train_says_which_device_is_missing(tmp_path):
    from pyg_schnet.cli import main

    with pytest.raises(ValueError, match="--device: " + NO_CUDA):
        main(
            [
                "train",
                "md17",
                "--raw-file",
                str(tmp_path / "none.npz"),
                "--out",
                str(tmp_path / "run"),
                "--device",
                "cuda",
            ]
        )
