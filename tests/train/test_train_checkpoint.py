"""Checkpoints and saved models: weights-only loadable, atomic, checksummed, with units, with errors
naming the file; run folders lose the temporaries of dead writers."""

import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.io.files import atomic_torch_save
from pyg_schnet.io.model_file import CHECKPOINT_FORMAT, CHECKPOINT_FORMATS, MODEL_FORMAT, content_digest, load_verified
from pyg_schnet.train import TrainConfig, Trainer, load_model, save_model
from pyg_schnet.train.state import rng_state, set_rng_state


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    data = synthetic_molecules(12, seed=3)
    model = tiny_model()
    model.set_standardization(-3.0, 1.0)
    split = {"train": torch.arange(8), "val": torch.arange(8, 12), "test": torch.empty(0, dtype=torch.long)}
    trainer = Trainer(
        model,
        data[:8],
        data[8:],
        tmp_path,
        TrainConfig(rho=0.0, batch_size=4, max_epochs=1, progress=False),
        split=split,
    )
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in (
        "model",
        "ema",
        "best_model",
        "optimizer",
        "scheduler",
        "rng",
        "step",
        "epoch",
        "split",
        "best_val_loss",
        "train_config",
        "model_config",
        "history",
        "elapsed_s",
    ):
        assert key in state, key
    assert set(state["rng"]) >= {"torch", "numpy", "python", "loader"}
    assert torch.equal(state["split"]["val"], split["val"])
    assert state["step"] == 2 and state["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp-*")), "temporary files left behind"  # pyg_schnet.io.files names
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


# ------------------------------------------------------------ issue 8: checksums, units, temporaries
def flip_a_byte_inside(path, tensor: torch.Tensor) -> None:
    """Flip one bit in the stored bytes of ``tensor`` (found verbatim in the file)."""
    raw = bytearray(path.read_bytes())
    needle = tensor.detach().contiguous().numpy().tobytes()
    at = raw.find(needle)
    assert at >= 0 and raw.find(needle, at + 1) < 0, "the tensor's bytes must occur exactly once"
    raw[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_model_file_carries_units_and_checksum_and_a_flipped_byte_is_refused(tmp_path):
    model = tiny_model(4)
    model.set_standardization(-2.0, 0.5)
    path = tmp_path / "model.pt"
    save_model(model, path)
    stored = torch.load(path, weights_only=True)
    assert stored["format"] == MODEL_FORMAT == "pyg_schnet.model/3"
    assert stored["units"] == {"energy": "kcal/mol", "length": "Angstrom"}
    assert stored["sha256"] == content_digest(stored) and len(stored["sha256"]) == 64
    assert load_model(path).units == {"energy": "kcal/mol", "length": "Angstrom"}

    weight = model.representation.embedding.weight
    flip_a_byte_inside(path, weight)
    assert not torch.equal(torch.load(path, weights_only=True)["state_dict"]["representation.embedding.weight"], weight)
    with pytest.raises(ValueError, match=r"model\.pt: checksum mismatch.*corrupt"):
        load_model(path)


def test_model_units_round_trip_and_bad_units(tmp_path):
    model = tiny_model(1)
    model.units = {"energy": "eV", "length": "Angstrom"}
    save_model(model, tmp_path / "ev.pt")
    assert load_model(tmp_path / "ev.pt").units == {"energy": "eV", "length": "Angstrom"}
    model.units = {"energy": "eV", "length": "nm"}
    with pytest.raises(ValueError, match="positions are in Angstrom"):
        save_model(model, tmp_path / "nm.pt")
    assert not (tmp_path / "nm.pt").exists()


def test_model_written_in_the_old_format_still_loads(tmp_path):
    # pyg_schnet.model/1: keys format, config and state_dict only; no checksum, no units
    model = tiny_model(2)
    model.set_standardization(-1.5, 2.0)
    old = {
        "format": "pyg_schnet.model/1",
        "config": dict(model.config),
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
    }
    torch.save(old, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.units is None  # the file does not say; nothing guesses (SchNetCalculator asks for energy_unit)
    z = torch.tensor([8, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    torch.testing.assert_close(loaded(z, pos), model.eval()(z, pos), rtol=0, atol=0)
    # a format /2 file must carry its checksum: one without is damaged, not old
    torch.save({**old, "format": MODEL_FORMAT}, tmp_path / "stripped.pt")
    with pytest.raises(ValueError, match=r"stripped\.pt: format pyg_schnet\.model/3 needs a 'sha256'"):
        load_model(tmp_path / "stripped.pt")
    torch.save({**old, "format": "pyg_schnet.model/9"}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=r"future\.pt: field 'format' is 'pyg_schnet\.model/9'"):
        load_model(tmp_path / "future.pt")


def test_empty_and_text_files_name_the_cause(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt: the file is empty \(0 bytes\)"):
        load_model(tmp_path / "empty.pt")
    (tmp_path / "notes.pt").write_text("hello\n")
    with pytest.raises(
        ValueError, match=r"notes\.pt: not a file written by torch\.save \(it starts with b'hello\\n'\)"
    ):
        load_model(tmp_path / "notes.pt")


def trained(tmp_path, max_epochs=1):
    data = synthetic_molecules(12, seed=3)
    model = tiny_model()
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(rho=0.0, batch_size=4, max_epochs=max_epochs, patience=None, progress=False)
    return Trainer(model, data[:8], data[8:], tmp_path, cfg)


def test_corrupt_checkpoint_is_refused_on_resume(tmp_path):
    trainer = trained(tmp_path)
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT and state["sha256"] == content_digest(state)
    load_verified(tmp_path / "checkpoint.pt", CHECKPOINT_FORMATS)
    flip_a_byte_inside(tmp_path / "checkpoint.pt", state["optimizer"]["state"][0]["exp_avg_sq"])
    with pytest.raises(ValueError, match=r"checkpoint\.pt: checksum mismatch"):
        trained(tmp_path, max_epochs=2).fit(resume=True)


def test_old_checkpoint_without_checksum_resumes(tmp_path):
    trained(tmp_path).fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    old = {k: v for k, v in state.items() if k not in ("sha256", "batching")}
    torch.save({**old, "format": "pyg_schnet.checkpoint/1"}, tmp_path / "checkpoint.pt")
    fit = trained(tmp_path, max_epochs=2).fit(resume=True)
    assert (fit.epochs, fit.resumed_from_epoch) == (2, 1)


def test_training_removes_temporaries_of_dead_writers_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".checkpoint.pt.tmp-{dead_pid}"
        stale.write_bytes(b"x" * 100)
        busy = tmp_path / f".model.pt.tmp-{alive.pid}"
        busy.write_bytes(b"y")
        trained(tmp_path).fit()
        assert not stale.exists()
        assert busy.exists()  # a live writer's file is left alone
    finally:
        alive.kill()
        alive.wait()
