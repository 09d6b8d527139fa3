"""Checkpoints and saved models: weights-only loadable, atomic, with errors naming the file."""
import random

import numpy as np
import pytest
import torch

from pyg_schnet.train import TrainConfig, Trainer, load_model, save_model
from pyg_schnet.train.checkpoint import atomic_torch_save, rng_state, set_rng_state

from _trainer_tiny_data import synthetic_molecules, tiny_model


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    data = synthetic_molecules(12, seed=3)
    model = tiny_model()
    model.set_standardization(-3.0, 1.0)
    split = {"train": torch.arange(8), "val": torch.arange(8, 12), "test": torch.empty(0, dtype=torch.long)}
    trainer = Trainer(model, data[:8], data[8:], tmp_path, TrainConfig(rho=0.0, batch_size=4, max_epochs=1,
                                                                         progress=False), split=split)
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("model", "ema", "best_model", "optimizer", "scheduler", "rng", "step", "epoch", "split",
                "best_val_loss", "train_config", "model_config", "history", "elapsed_s"):
        assert key in state, key
    assert set(state["rng"]) >= {"torch", "numpy", "python", "loader"}
    assert torch.equal(state["split"]["val"], split["val"])
    assert state["step"] == 2 and state["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp-*")), "temporary files left behind"  # pyg_schnet._atomic names
    torch.load(tmp_path / "model.pt", weights_only=True)


def test_rng_state_round_trip():
    gen = torch.Generator().manual_seed(5)
    state = rng_state(gen)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    set_rng_state(state, gen)
    second = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert torch.equal(first[3], second[3])


def test_load_model_round_trip_and_errors(tmp_path):
    model = tiny_model(4)
    model.set_standardization(-2.0, 0.5, torch.linspace(-1.0, 1.0, 100))
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert not loaded.training and loaded.config == model.config
    z = torch.tensor([8, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    torch.testing.assert_close(loaded(z, pos), model.eval()(z, pos), rtol=0, atol=0)

    atomic_torch_save({"state_dict": model.state_dict()}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: missing field 'config'"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_model(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pt: not a file written by torch\.save"):
        load_model(tmp_path / "junk.pt")
