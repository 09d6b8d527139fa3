"""Training through the dense path gives the sparse path's run; 'auto' picks one and records it."""

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.train import TrainConfig, Trainer
from pyg_schnet.train.predict import check_batching, predict

DATA = synthetic_molecules(30, seed=4)
TRAIN, VAL = DATA[:20], DATA[20:]


def fit(out, batching: str):
    model = tiny_model(0)
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(rho=10.0, batch_size=8, max_epochs=2, patience=None, seed=3, progress=False, batching=batching)
    trainer = Trainer(model, TRAIN, VAL, out, cfg)
    return trainer, trainer.fit()


def test_dense_training_reproduces_sparse_training(tmp_path):
    _, sparse = fit(tmp_path / "sparse", "sparse")
    trainer, dense = fit(tmp_path / "dense", "dense")
    assert dense.batching == "dense" and sparse.batching == "sparse"
    assert dense.steps == sparse.steps
    for key in ("energy_mae", "force_mae"):
        assert dense.best_val[key] == pytest.approx(sparse.best_val[key], rel=1e-4)


def test_predict_dense_forces_follow_sparse_atom_order():
    from torch_geometric.data import Batch

    model = tiny_model(1).double().eval()
    batch = Batch.from_data_list(DATA[:5])
    batch.pos = batch.pos.double()
    e_s, f_s = predict(model, batch, with_forces=True, batching="sparse")
    e_d, f_d = predict(model, batch, with_forces=True, batching="dense")
    torch.testing.assert_close(e_d, e_s, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f_d, f_s, rtol=1e-10, atol=1e-10)


def test_auto_resolves_to_a_mode_and_is_recorded(tmp_path, capsys):
    trainer, result = fit(tmp_path / "auto", "auto")
    assert result.batching in ("sparse", "dense") and trainer.batching == result.batching
    assert f"-> using {result.batching}" in capsys.readouterr().out


def test_unknown_batching_is_rejected():
    with pytest.raises(ValueError, match="batching must be one of"):
        TrainConfig(batching="padded")
    with pytest.raises(ValueError, match="batching must be one of"):
        check_batching("auto")  # predict needs a resolved mode
