"""The plateau learning-rate schedule (``TrainConfig(lr_schedule="plateau")``, SchNetPack's default):
reduced once per epoch on the validation loss, saved in the checkpoint so a resume continues it
exactly; checkpoints of the paper's schedule (0.2.0 included) keep resuming with it."""

from pathlib import Path

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet import load_model
from pyg_schnet.io.model_file import safe_load
from pyg_schnet.train import TrainConfig, Trainer
from pyg_schnet.train.schedules import PLATEAU_DEFAULTS

DATA = synthetic_molecules(36, seed=2)
TRAIN, VAL = DATA[:24], DATA[24:]
SPLIT = {"train": torch.arange(24), "val": torch.arange(24, 36), "test": torch.empty(0, dtype=torch.long)}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def make_trainer(out, model_seed: int = 0, **changes) -> Trainer:
    model = tiny_model(model_seed)
    model.set_standardization(-3.0, 1.0)
    settings = dict(
        rho=10.0,
        batch_size=8,
        max_epochs=6,
        patience=None,
        seed=7,
        progress=False,
        lr=0.05,  # high, and a short EMA, so that the validation loss stalls within a few epochs
        ema_decay=0.5,
        lr_schedule="plateau",
        plateau_factor=0.5,
        plateau_patience=0,
        plateau_cooldown=0,
        min_lr=0.015,
    )
    return Trainer(model, TRAIN, VAL, out, TrainConfig(**{**settings, **changes}), split=SPLIT)


def expected_plateau_lrs(val_losses, lr0, factor, patience, min_lr, cooldown):
    """The learning rate after each epoch by SchNetPack's rule written out: reduce when more than
    ``patience`` epochs in a row did not lower the best loss, then rest ``cooldown`` epochs (in which
    no epoch counts as bad) before counting again."""
    lr, best, bad, rest, out = lr0, float("inf"), 0, 0, []
    for loss in val_losses:
        if loss < best:
            best, bad = loss, 0
        else:
            bad += 1
        if rest > 0:
            rest, bad = rest - 1, 0
        if bad > patience:
            lr, bad, rest = max(lr * factor, min_lr), 0, cooldown
        out.append(lr)
    return out


@pytest.mark.parametrize("cooldown", [0, 2])
def test_plateau_schedule_reduces_the_lr_per_epoch_on_the_validation_loss(tmp_path, cooldown):
    trainer = make_trainer(tmp_path, plateau_cooldown=cooldown)
    trainer.fit()
    val = [row["val_loss"] for row in trainer.history]
    lrs = [row["lr"] for row in trainer.history]
    expected = expected_plateau_lrs(val, 0.05, 0.5, 0, 0.015, cooldown)
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert 0.025 in lrs, "the test data must reduce the lr"
    if cooldown == 0:
        assert lrs[-1] == 0.015, "the test data must reduce the lr down to min_lr"
    # constant within an epoch (no per-step decay): the optimizer used the recorded lr of the previous epoch
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[-1], rel=1e-12)


def test_plateau_run_resumed_after_interruption_ends_like_an_uninterrupted_one(tmp_path):
    reference = make_trainer(tmp_path / "a", plateau_cooldown=2)
    reference.fit()
    assert len({row["lr"] for row in reference.history}) > 1  # the schedule acted

    interrupted = make_trainer(tmp_path / "b", plateau_cooldown=2)
    original_step = interrupted._train_step

    class Killed(Exception):
        pass

    def step_then_die(batch):
        if interrupted.step == 10:  # one step into epoch 4 (3 steps per epoch), in the cooldown of a reduction
            raise Killed
        return original_step(batch)

    interrupted._train_step = step_then_die
    with pytest.raises(Killed):
        interrupted.fit()
    on_disk = safe_load(tmp_path / "b" / "checkpoint.pt")
    assert on_disk["epoch"] == 3 and on_disk["scheduler"]["cooldown_counter"] == 1

    resumed = make_trainer(tmp_path / "b", model_seed=123, plateau_cooldown=2)
    resumed.fit(resume=True)
    assert len(resumed.history) == len(reference.history) == 6
    for row_ref, row in zip(reference.history, resumed.history):
        for key in ("step", "lr", "train_loss", "val_loss", "val_energy_mae", "val_force_mae"):
            assert row[key] == row_ref[key], key
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.scheduler.state_dict() == reference.scheduler.state_dict()


def test_resume_refuses_switching_the_schedule(tmp_path):
    make_trainer(tmp_path, max_epochs=1, lr_schedule="paper").fit()
    with pytest.raises(ValueError, match=r"lr_schedule 'paper' -> 'plateau'"):
        make_trainer(tmp_path, max_epochs=2).fit(resume=True)
    make_trainer(tmp_path / "p", max_epochs=1).fit()
    with pytest.raises(ValueError, match=r"plateau_patience 0 -> 3"):
        make_trainer(tmp_path / "p", max_epochs=2, plateau_patience=3).fit(resume=True)


def test_checkpoint_of_version_0_2_resumes_with_the_paper_schedule_only(tmp_path):
    data = synthetic_molecules(6, seed=1)
    split = {"train": torch.arange(4), "val": torch.arange(4, 6), "test": torch.empty(0, dtype=torch.long)}

    def resume(out, **changes):
        (out / "checkpoint.pt").write_bytes((FIXTURES / "checkpoint_v0.2.0.pt").read_bytes())
        model = load_model(FIXTURES / "model_v0.2.0.pt").train()
        config = TrainConfig(batch_size=2, max_epochs=2, progress=False, **changes)
        trainer = Trainer(model, data[:4], data[4:], out, config, split=split)
        trainer.fit(resume=True)
        return trainer

    (tmp_path / "a").mkdir()
    trainer = resume(tmp_path / "a")
    assert trainer.step == 4
    assert trainer.history[-1]["lr"] == pytest.approx(1e-3 * 0.96 ** (4 / 100_000), rel=1e-12)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"lr_schedule 'paper' -> 'plateau'"):
        resume(tmp_path / "b", lr_schedule="plateau")


def test_defaults_are_schnetpacks():
    config = TrainConfig()
    assert config.lr_schedule == "paper"
    settings = (config.plateau_factor, config.plateau_patience, config.plateau_cooldown, config.min_lr)
    assert settings == (0.5, 75, 10, 0.0)  # SchNetPack's configs/task/scheduler/reduce_on_plateau.yaml
    assert PLATEAU_DEFAULTS == {"factor": 0.5, "patience": 75, "cooldown": 10, "min_lr": 0.0}


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(lr_schedule="cosine"), r"TrainConfig: lr_schedule must be one of paper, plateau, got 'cosine'"),
        (dict(plateau_factor=1.0), r"TrainConfig: plateau_factor must be a finite number in \(0, 1\), got 1\.0"),
        (dict(plateau_factor=0.0), r"plateau_factor must be a finite number in \(0, 1\)"),
        (dict(plateau_patience=-1), r"TrainConfig: plateau_patience must be an integer >= 0, got -1"),
        (dict(plateau_cooldown=-2), r"TrainConfig: plateau_cooldown must be an integer >= 0, got -2"),
        (dict(min_lr=float("nan")), r"TrainConfig: min_lr must be a finite number in \[0, inf\), got nan"),
        (dict(min_lr=-1e-6), r"min_lr must be a finite number in \[0, inf\)"),
    ],
)
def test_bad_plateau_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_any_lower_loss_is_an_improvement_as_in_schnetpack():
    """SchNetPack's threshold 0: a loss lower than the best by 5e-5 relative is an improvement (torch's
    default threshold 1e-4 would count it as a bad epoch and, with patience 0, halve the lr)."""
    from pyg_schnet.train.schedules import plateau_lr_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = plateau_lr_schedule(optimizer, factor=0.5, patience=0, min_lr=0.0, cooldown=0)
    schedule.step(1.0)
    schedule.step(1.0 - 5e-5)
    assert schedule.get_last_lr() == [1.0]
    schedule.step(1.0 - 5e-5)  # not lower: a bad epoch
    assert schedule.get_last_lr() == [0.5]
