"""The trainer's fused Adam and its EMA update make today's weights: the EMA exactly, Adam to float32
rounding after 100 steps of force training."""

from __future__ import annotations

import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch_geometric.loader import DataLoader

from pyg_schnet.train.loss import energy_force_loss
from pyg_schnet.train.trainer import EMAUpdate, adam, exponential_moving_average

STEPS = 100


def _train(model, optimizer, ema_step, batches):
    for batch in batches:
        model.train()
        energy, forces = model.energy_and_forces(batch.z, batch.pos, batch.batch)
        loss = energy_force_loss(energy, batch.energy, batch.batch, 100.0, forces, batch.force)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_step()


def test_fused_adam_and_the_ema_update_equal_the_per_parameter_loop():
    data = synthetic_molecules(16, seed=4)
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = [b for _ in range(STEPS // len(loader) + 1) for b in loader][:STEPS]

    old, new = tiny_model(7), tiny_model(7)
    old.set_standardization(-7.0, 2.0)
    new.set_standardization(-7.0, 2.0)
    old_opt = torch.optim.Adam(old.parameters(), lr=1e-3, foreach=False, fused=False)
    old_ema = AveragedModel(old, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
    new_opt = adam(list(new.parameters()), 1e-3)
    assert new_opt.defaults["fused"] is True
    new_ema = exponential_moving_average(new, 0.99)
    _train(old, old_opt, lambda: old_ema.update_parameters(old), batches)
    _train(new, new_opt, EMAUpdate(new_ema, new, 0.99), batches)

    for (name, a), b in zip(old.state_dict().items(), new.state_dict().values()):
        scale = float(a.abs().max()) or 1.0
        assert float((a - b).abs().max()) <= 1e-5 * scale, name  # float32 rounding, accumulated over 100 steps
    assert int(new_ema.n_averaged) == int(old_ema.n_averaged) == STEPS
    for (name, a), b in zip(old_ema.module.state_dict().items(), new_ema.module.state_dict().values()):
        scale = float(a.abs().max()) or 1.0
        assert float((a - b).abs().max()) <= 1e-5 * scale, name


def test_the_ema_update_is_exactly_averaged_models():
    model = tiny_model(3)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    ours = exponential_moving_average(model, 0.9)
    update = EMAUpdate(ours, model, 0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        reference.update_parameters(model)
        update()
    for (name, a), b in zip(reference.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), name
