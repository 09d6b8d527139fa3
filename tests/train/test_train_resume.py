"""A run killed inside an epoch and resumed from its checkpoint ends exactly like an uninterrupted run."""

import re

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.io.model_file import safe_load
from pyg_schnet.train import TrainConfig, Trainer

DATA = synthetic_molecules(36, seed=2)
TRAIN, VAL = DATA[:24], DATA[24:]
SPLIT = {"train": torch.arange(24), "val": torch.arange(24, 36), "test": torch.empty(0, dtype=torch.long)}


def make_trainer(out, model_seed: int = 0, max_epochs: int = 3, split=SPLIT) -> Trainer:
    model = tiny_model(model_seed)
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(rho=10.0, batch_size=8, max_epochs=max_epochs, patience=None, seed=7, progress=False)
    return Trainer(model, TRAIN, VAL, out, cfg, split=split)


class Killed(Exception):
    pass


def test_resume_after_interrupted_epoch_reproduces_uninterrupted_run(tmp_path):
    reference = make_trainer(tmp_path / "a")
    ref_fit = reference.fit()
    assert ref_fit.epochs == 3 and ref_fit.steps == 9

    interrupted = make_trainer(tmp_path / "b")
    original_step = interrupted._train_step

    def step_then_die(batch):
        if interrupted.step == 7:  # two steps into epoch 3 (3 steps per epoch)
            raise Killed
        return original_step(batch)

    interrupted._train_step = step_then_die
    with pytest.raises(Killed):
        interrupted.fit()
    on_disk = safe_load(tmp_path / "b" / "checkpoint.pt")
    assert on_disk["epoch"] == 2 and on_disk["step"] == 6

    # a new process: fresh model with other initial weights, everything else from the checkpoint
    resumed = make_trainer(tmp_path / "b", model_seed=123)
    fit = resumed.fit(resume=True)
    assert (fit.epochs, fit.steps) == (3, 9)
    assert len(resumed.history) == 3
    for row_ref, row in zip(reference.history, resumed.history):
        for key in ("step", "lr", "train_loss", "val_loss", "val_energy_mae", "val_force_mae"):
            assert row[key] == row_ref[key], key
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    for key, value in reference.ema.state_dict().items():
        assert torch.equal(resumed.ema.state_dict()[key], value), key
    assert fit.best_val == ref_fit.best_val
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 3 and log[0].startswith("epoch,step,lr")


def test_resume_refuses_another_split(tmp_path):
    make_trainer(tmp_path, max_epochs=1).fit()
    other = dict(SPLIT, val=torch.arange(25, 37))
    with pytest.raises(ValueError, match="split indices differ"):
        make_trainer(tmp_path, max_epochs=2, split=other).fit(resume=True)


def test_finished_run_resumed_with_larger_cap_continues(tmp_path):
    make_trainer(tmp_path, max_epochs=1).fit()
    fit = make_trainer(tmp_path, max_epochs=2).fit(resume=True)
    assert (fit.epochs, fit.steps, fit.stopped) == (2, 6, "max_epochs")


def make_with(out, **changes) -> Trainer:
    model = tiny_model(0)
    model.set_standardization(-3.0, 1.0)
    settings = dict(rho=10.0, batch_size=8, max_epochs=1, patience=None, seed=7, progress=False)
    return Trainer(model, TRAIN, VAL, out, TrainConfig(**{**settings, **changes}), split=SPLIT)


@pytest.mark.parametrize(
    "changes, listed",
    [
        (dict(lr=0.01), [r"lr 0\.001 -> 0\.01"]),  # was ignored, yet reported in results.json
        (dict(rho=0.0), [r"rho 10\.0 -> 0\.0"]),  # was applied mid-run
        (dict(batch_size=4, seed=8), [r"batch_size 8 -> 4", r"seed 7 -> 8"]),  # was applied silently
        (
            dict(lr_decay=0.5, lr_decay_steps=10, ema_decay=0.9, batching="dense"),
            [
                r"lr_decay 0\.96 -> 0\.5",
                r"lr_decay_steps 100000 -> 10",
                r"ema_decay 0\.99 -> 0\.9",
                r"batching 'sparse' -> 'dense'",
            ],
        ),
    ],
)
def test_resume_refuses_changed_fixed_settings_listing_each(tmp_path, changes, listed):
    make_with(tmp_path).fit()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint\.pt: a resume must keep the settings") as info:
        make_with(tmp_path, max_epochs=2, **changes).fit(resume=True)
    for pattern in listed:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_resume_accepts_changed_caps(tmp_path):
    make_with(tmp_path).fit()
    fit = make_with(tmp_path, max_epochs=2, patience=5, eval_batch_size=3, max_minutes=30.0).fit(resume=True)
    assert (fit.epochs, fit.resumed_from_epoch) == (2, 1)


def test_resume_with_auto_batching_keeps_the_mode_it_resolved_to(tmp_path, monkeypatch):
    first = make_with(tmp_path, batching="auto")
    first.fit()
    resolved = first.batching
    assert resolved in ("sparse", "dense")
    assert safe_load(tmp_path / "checkpoint.pt")["batching"] == resolved

    def no_new_measurement(*args, **kwargs):
        raise AssertionError("a resume measured the batching again")

    monkeypatch.setattr("pyg_schnet.train.trainer.measure_batching", no_new_measurement)
    second = make_with(tmp_path, batching="auto", max_epochs=2)
    assert second.fit(resume=True).batching == resolved
