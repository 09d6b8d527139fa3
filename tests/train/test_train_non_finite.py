"""Issue 8, defect 2: a run whose loss, weights or validation loss become non-finite stops with an error
naming the epoch and step, writes nothing for that epoch, and results.json never claims a missing file."""

import copy
import json
from pathlib import Path

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.datasets import SplitIndices
from pyg_schnet.experiments.protocols.md17 import build_parser
from pyg_schnet.experiments.runner import run_experiment
from pyg_schnet.io.model_file import safe_load
from pyg_schnet.train import NonFiniteError, TrainConfig, Trainer

DATA = synthetic_molecules(16, seed=5)


def make_trainer(out, train, val, max_epochs=2) -> Trainer:
    model = tiny_model()
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(rho=1.0, batch_size=4, max_epochs=max_epochs, patience=None, seed=1, progress=False)
    return Trainer(model, train, val, out, cfg)


def with_nan_energy(examples, k):
    examples = [copy.copy(d) for d in examples]
    examples[k].energy = torch.full_like(examples[k].energy, float("nan"))
    return examples


def test_nan_training_loss_stops_at_its_epoch_and_step_and_keeps_the_last_good_files(tmp_path):
    train, val = list(DATA[:12]), DATA[12:]
    make_trainer(tmp_path, train, val, max_epochs=1).fit()
    checkpoint, model = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "model.pt").read_bytes()

    bad = with_nan_energy(train, 7)  # epoch 2 of a resumed run meets the NaN energy
    trainer = make_trainer(tmp_path, bad, val, max_epochs=2)
    with pytest.raises(
        NonFiniteError,
        match=r"epoch 2, step [4-6]: the training loss is nan .*"
        r"training data: example 7, field 'energy'.*checkpoint\.pt holds epoch 1, model\.pt the best epoch 1\.",
    ):
        trainer.fit(resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    assert (tmp_path / "model.pt").read_bytes() == model
    assert safe_load(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_nan_validation_loss_stops_naming_the_validation_example(tmp_path):
    trainer = make_trainer(tmp_path, DATA[:12], with_nan_energy(DATA[12:], 2))
    with pytest.raises(
        NonFiniteError,
        match=r"epoch 1, step 3: the validation loss is nan with finite weights.*"
        r"validation data: example 2, field 'energy'.*no epoch completed",
    ):
        trainer.fit()
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "checkpoint.pt").exists()


def test_non_finite_weights_stop_the_run(tmp_path):
    trainer = make_trainer(tmp_path, DATA[:12], DATA[12:])
    step = trainer._train_step

    def step_then_corrupt(batch):
        out = step(batch)
        if trainer.step == 3:  # the last step of epoch 1: its loss was still finite
            with torch.no_grad():
                trainer.model.head.net[0].bias[1] = float("inf")
        return out

    trainer._train_step = step_then_corrupt
    with pytest.raises(
        NonFiniteError, match=r"epoch 1, step 3: the weights became non-finite \(first: head\.net\.0\.bias\)"
    ):
        trainer.fit()


def run_tiny_experiment(tmp_path, *flags, val=None):
    args = build_parser().parse_args(
        [
            "--out",
            str(tmp_path / "out"),
            "--hidden-channels",
            "16",
            "--num-filters",
            "16",
            "--num-interactions",
            "1",
            "--num-gaussians",
            "20",
            "--batch-size",
            "4",
            "--no-progress",
            *flags,
        ]
    )
    split = SplitIndices(torch.arange(12), torch.arange(12, 14), torch.arange(14, 16))
    return run_experiment(
        args,
        benchmark="md17",
        label="tiny",
        rho=args.rho,
        train_set=DATA[:12],
        val_set=val if val is not None else DATA[12:14],
        test_sets={"test": DATA[14:]},
        split=split,
        paper={"test": {}},
        data_source={},
        command=["test"],
    )


def test_experiment_with_nan_validation_fails_without_results(tmp_path):
    # "energy MAE -", exit 0, and a results.json listing a model.pt that was never written
    with pytest.raises(NonFiniteError, match="epoch 1"):
        run_tiny_experiment(tmp_path, "--max-epochs", "2", val=with_nan_energy(DATA[12:14], 0))
    assert not (tmp_path / "out" / "results.json").exists()


def test_results_list_only_files_that_exist(tmp_path):
    results = run_tiny_experiment(tmp_path, "--max-epochs", "0")
    out = Path(tmp_path / "out")
    assert json.loads((out / "results.json").read_text())["files"] == results["files"]
    assert "model" not in results["files"]  # no epoch ran, so no best model was saved
    assert {"checkpoint", "split"} <= set(results["files"])
    for name in results["files"].values():
        assert (out / name).is_file(), name
