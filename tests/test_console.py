"""The ``pyg-schnet`` console command: its entry point, and that its subcommands run the same code as
the scripts (train -> evaluate reproduces the training run's test errors; md = pyg-schnet md)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write

import pyg_schnet
from pyg_schnet.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--hidden-channels",
    "8",
    "--num-filters",
    "8",
    "--num-interactions",
    "1",
    "--num-gaussians",
    "20",
    "--threads",
    "1",
    "--no-progress",
]


def test_console_script_in_pyproject_points_at_the_cli():
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    module, _, attr = project["scripts"]["pyg-schnet"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert project["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")


def test_version_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and pyg_schnet.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2 and "invalid choice: 'fly'" in capsys.readouterr().err


@pytest.fixture
def tiny_md17(tmp_path) -> Path:
    """An MD17-layout npz (under MD17's ethanol file name) of 40 distorted water frames with made-up
    energies and forces."""
    atoms = molecule("H2O")  # a small molecule keeps the training epoch short
    rng = np.random.default_rng(0)
    R = atoms.positions + rng.normal(scale=0.05, size=(40, len(atoms), 3))
    path = tmp_path / "md17_ethanol.npz"
    np.savez(
        path, R=R, z=atoms.numbers, E=rng.normal(-47000.0, 2.0, size=(40, 1)), F=rng.normal(scale=10.0, size=R.shape)
    )
    return path


def train_md17_flags(raw_file, root, out) -> list:
    """``pyg-schnet train md17`` on the tiny file: 24 training and 8 validation molecules, tiny model."""
    return [
        "train",
        "md17",
        "--raw-file",
        str(raw_file),
        "--root",
        str(root),
        "--out",
        str(out),
        "--n-train",
        "24",
        "--n-val",
        "8",
        *TINY,
    ]


def test_train_then_evaluate_reproduces_the_test_errors(tiny_md17, tmp_path, capsys):
    out, root = tmp_path / "run", tmp_path / "data"
    results = main([*train_md17_flags(tiny_md17, root, out), "--max-epochs", "1"])
    assert results["command"].startswith("pyg-schnet train md17")
    assert (out / "model.pt").is_file()
    errors = main(
        [
            "evaluate",
            str(out / "model.pt"),
            "--dataset",
            "md17",
            "--root",
            str(root),
            "--split",
            str(out / "split.npz"),
            "--subset",
            "test",
            "--out",
            str(out / "eval.json"),
        ]
    )
    assert errors["num_molecules"] == results["test"]["num_molecules"] == 8
    for key in ("energy_mae", "force_mae", "energy_rmse", "force_rmse"):
        assert errors[key] == pytest.approx(results["test"][key], rel=1e-6), key
    assert errors["unit"] == "kcal/mol"
    assert json.loads((out / "eval.json").read_text())["energy_mae"] == pytest.approx(errors["energy_mae"])
    assert "energy MAE" in capsys.readouterr().out


def test_evaluate_reads_data_in_the_models_energy_unit(tiny_md17, tmp_path):
    from ase import units

    from pyg_schnet.experiments.evaluate import load_dataset

    root = tmp_path / "data"
    kcal = load_dataset("md17", root, "kcal/mol", raw_file=tiny_md17)
    ev = load_dataset("md17", root, "eV")
    assert ev[3].energy.item() == pytest.approx(kcal[3].energy.item() * units.kcal / units.mol, rel=1e-12)
    np.testing.assert_allclose(ev[3].force.numpy(), kcal[3].force.numpy() * units.kcal / units.mol, rtol=1e-6)


def test_md_subcommand_equals_the_library_entry_point(tmp_path):
    from pyg_schnet import SchNet
    from pyg_schnet.experiments.md_command import main as md_main
    from pyg_schnet.io.model_file import save_model

    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=20, rbf_stop=3.0, cutoff=3.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    save_model(model, tmp_path / "model.pt")
    write(tmp_path / "start.xyz", molecule("CH3CH2OH"))
    flags = ["--steps", "10", "--dt", "0.5", "--log-interval", "5", "--traj-interval", "5", "--no-progress"]
    console = main(
        ["md", str(tmp_path / "model.pt"), str(tmp_path / "start.xyz"), *flags, "--out", str(tmp_path / "a")]
    )
    module = md_main([str(tmp_path / "model.pt"), str(tmp_path / "start.xyz"), *flags, "--out", str(tmp_path / "b")])
    assert console["command"][:2] == ["pyg-schnet", "md"]
    assert module["command"][:2] == ["pyg-schnet", "md"]  # the default prog of the library entry point
    assert (tmp_path / "a" / "energies.csv").read_text() == (tmp_path / "b" / "energies.csv").read_text()


def test_evaluate_refuses_forces_on_qm9(tmp_path):
    from pyg_schnet.experiments.evaluate import evaluate_model

    with pytest.raises(ValueError, match="--dataset must be one of"):
        from pyg_schnet.experiments.evaluate import load_dataset

        load_dataset("md99", tmp_path, "kcal/mol")
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate_model(tmp_path / "missing.pt", "md17", tmp_path)


def test_an_out_folder_holding_a_run_is_refused_unless_resume_or_overwrite(tiny_md17, tmp_path):
    out, root = tmp_path / "run", tmp_path / "data"
    flags = train_md17_flags(tiny_md17, root, out)
    main([*flags, "--max-epochs", "2"])
    model_before = (out / "model.pt").read_bytes()
    log_before = (out / "log.csv").read_text()
    with pytest.raises(
        FileExistsError,
        match=r"run already holds a training run \(.*checkpoint\.pt.*model\.pt.*\): "
        r"pass --resume to continue it, --overwrite to replace it",
    ):
        main([*flags, "--max-epochs", "1"])
    assert (out / "model.pt").read_bytes() == model_before and (out / "log.csv").read_text() == log_before
    with pytest.raises(ValueError, match="pass one of them"):
        main([*flags, "--max-epochs", "1", "--resume", "--overwrite"])
    main([*flags, "--max-epochs", "3", "--resume"])  # continues: epochs 3
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 3
    main([*flags, "--max-epochs", "1", "--overwrite"])  # replaces: a fresh 1-epoch run
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--patience", "-3"], r"command line: --patience \(0: off\) must be an integer >= 0, got -3"),
        (
            ["--seed", str(2**70)],
            r"command line: --seed must be an integer from 0 to 2\*\*64 - 1 = 18446744073709551615",
        ),
        (["--seed", "-5"], r"--seed must be an integer from 0 to 2\*\*64 - 1 .*got -5"),
    ],
)
def test_training_refuses_a_negative_patience_and_an_out_of_range_seed(tiny_md17, tmp_path, flags, message):
    """(issue 20) ``--patience -3`` switched early stopping off silently; a seed beyond 2**64 - 1 failed
    deep in torch ("Overflow when unpacking long long") without naming the flag."""
    out, root = tmp_path / "run", tmp_path / "data"
    with pytest.raises(ValueError, match=message):
        main([*train_md17_flags(tiny_md17, root, out), "--max-epochs", "1", *flags])
    assert not out.exists() and not root.exists()  # refused before anything was written


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--plateau-factor", "1.5"], r"command line: --plateau-factor must be a finite number in \(0, 1\), got 1\.5"),
        (["--plateau-factor", "0"], r"command line: --plateau-factor must be a finite number in \(0, 1\), got 0\.0"),
        (["--plateau-patience", "-1"], r"command line: --plateau-patience must be an integer >= 0, got -1"),
        (["--plateau-cooldown", "-1"], r"command line: --plateau-cooldown must be an integer >= 0, got -1"),
        (["--min-lr=-1e-6"], r"command line: --min-lr must be a finite number in \[0, inf\), got -1e-06"),
        (["--min-lr", "nan"], r"command line: --min-lr must be a finite number in \[0, inf\), got nan"),
    ],
)
def test_training_refuses_bad_plateau_flags(tiny_md17, tmp_path, flags, message):
    out, root = tmp_path / "run", tmp_path / "data"
    with pytest.raises(ValueError, match=message):
        main([*train_md17_flags(tiny_md17, root, out), "--max-epochs", "1", "--lr-schedule", "plateau", *flags])
    assert not out.exists() and not root.exists()  # refused before anything was written


def test_tensorboard_flag_without_tensorboard_names_the_install(tiny_md17, tmp_path, monkeypatch):
    out, root = tmp_path / "run", tmp_path / "data"
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(ImportError, match=r"--tensorboard needs the tensorboard package.*pip install tensorboard"):
        main([*train_md17_flags(tiny_md17, root, out), "--max-epochs", "1", "--tensorboard"])
    assert not out.exists() and not root.exists()


def test_plateau_schedule_and_tensorboard_are_recorded_in_results(tiny_md17, tmp_path):
    out, root = tmp_path / "run", tmp_path / "data"
    flags = ["--lr-schedule", "plateau", "--plateau-factor", "0.3", "--plateau-patience", "4", "--min-lr", "1e-5"]
    results = main([*train_md17_flags(tiny_md17, root, out), "--max-epochs", "2", "--tensorboard", *flags])
    recorded = json.loads((out / "results.json").read_text())
    for record in (results, recorded):
        train = record["config"]["train"]
        assert (train["lr_schedule"], train["plateau_factor"], train["plateau_patience"], train["min_lr"]) == (
            "plateau",
            0.3,
            4,
            1e-5,
        )
        assert train["tensorboard"] is True and record["files"]["tensorboard"] == "tensorboard"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    paper = main([*train_md17_flags(tiny_md17, root, tmp_path / "paper"), "--max-epochs", "1"])
    assert paper["config"]["train"]["lr_schedule"] == "paper" and "tensorboard" not in paper["files"]
