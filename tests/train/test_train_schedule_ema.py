"""Learning-rate schedule (0.96 every 100,000 steps) and the EMA weights that are validated and saved."""

import math

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.io.model_file import safe_load
from pyg_schnet.train import TrainConfig, Trainer, exponential_moving_average, load_model, paper_lr_schedule


def adam_with_schedule(lr: float = 1e-3):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=lr)
    scheduler = paper_lr_schedule(optimizer)
    optimizer.step()  # no gradient: a no-op that keeps the scheduler from warning
    return optimizer, scheduler


def test_learning_rate_after_100000_steps_is_096_times_initial():
    optimizer, scheduler = adam_with_schedule()
    for _ in range(50_000):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * math.sqrt(0.96), rel=1e-12)
    for _ in range(50_000):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.96, rel=1e-12)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.96e-3, rel=1e-12)


def test_schedule_state_survives_a_weights_only_round_trip(tmp_path):
    optimizer, scheduler = adam_with_schedule()
    for _ in range(1234):
        scheduler.step()
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    optimizer2, scheduler2 = adam_with_schedule()
    scheduler2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    scheduler.step()
    scheduler2.step()
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.96 ** (1235 / 100_000), rel=1e-12)


def test_ema_update_rule_with_decay_099():
    model = torch.nn.Linear(2, 1)
    ema = exponential_moving_average(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)  # first update copies
    torch.testing.assert_close(ema.module.weight, torch.ones(1, 2))
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.99 * 1.0 + 0.01 * 3.0))


def test_trainer_uses_schedule_and_saves_ema_not_raw_weights(tmp_path):
    data = synthetic_molecules(24, seed=1)
    model = tiny_model()
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(rho=10.0, batch_size=8, max_epochs=2, patience=None, progress=False, lr_decay_steps=10)
    trainer = Trainer(model, data[:16], data[16:], tmp_path, cfg)
    fit = trainer.fit()
    assert fit.steps == 4 and fit.epochs == 2
    assert trainer.history[-1]["lr"] == pytest.approx(1e-3 * 0.96 ** (4 / 10), rel=1e-12)

    raw = trainer.model.state_dict()
    ema = trainer.ema.module.state_dict()
    differing = [k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], ema[k])]
    assert differing, "after several steps the EMA weights must differ from the raw weights"

    saved = safe_load(tmp_path / "model.pt")["state_dict"]
    best = trainer.best_state
    for key in raw:
        assert torch.equal(saved[key], best[key].cpu())
    if fit.best_epoch == fit.epochs:  # best = last epoch: the saved weights are the current EMA
        for key in raw:
            assert torch.equal(saved[key], ema[key])
    assert any(not torch.equal(saved[k], raw[k]) for k in differing)

    loaded = load_model(tmp_path / "model.pt")
    assert not loaded.training
    batch_z = torch.cat([d.z for d in data[16:18]])
    batch_pos = torch.cat([d.pos for d in data[16:18]])
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([d.z.numel() for d in data[16:18]]))
    torch.testing.assert_close(loaded(batch_z, batch_pos, batch), trainer.best_model()(batch_z, batch_pos, batch))
