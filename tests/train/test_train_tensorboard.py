"""The optional TensorBoard log (``TrainConfig(tensorboard=True)``): per epoch the numbers of
``log.csv`` (losses, MAEs, learning rate, epoch time) at the optimizer step, and Eq. 5's two terms."""

import csv
import sys

import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pyg_schnet.train import TrainConfig, Trainer

DATA = synthetic_molecules(30, seed=3)
TRAIN, VAL = DATA[:20], DATA[20:]
SPLIT = {"train": torch.arange(20), "val": torch.arange(20, 30), "test": torch.empty(0, dtype=torch.long)}
#: log.csv column -> TensorBoard tag
COLUMNS = {
    "train_loss": "train/loss",
    "train_energy_mae": "train/energy_mae",
    "train_force_mae": "train/force_mae",
    "val_loss": "val/loss",
    "val_energy_mae": "val/energy_mae",
    "val_energy_rmse": "val/energy_rmse",
    "val_force_mae": "val/force_mae",
    "val_force_rmse": "val/force_rmse",
    "lr": "lr",
    "epoch_s": "time/epoch_s",
}


def make_trainer(out, **changes) -> Trainer:
    model = tiny_model(0)
    model.set_standardization(-3.0, 1.0)
    settings = dict(rho=10.0, batch_size=8, max_epochs=2, patience=None, seed=5, progress=False, tensorboard=True)
    return Trainer(model, TRAIN, VAL, out, TrainConfig(**{**settings, **changes}), split=SPLIT)


def scalars(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def read_log(folder):
    with open(folder / "log.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_tensorboard_scalars_equal_the_csv_log_per_epoch(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.fit()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    logged, rows = scalars(tmp_path / "tensorboard"), read_log(tmp_path)
    assert len(rows) == 2
    for column, tag in COLUMNS.items():
        assert [step for step, _ in logged[tag]] == [int(row["step"]) for row in rows], tag
        # TensorBoard keeps float32, log.csv 10 significant digits
        assert [value for _, value in logged[tag]] == pytest.approx([row[column] for row in rows], rel=1e-6), tag
    # Eq. 5's two terms add up to the training loss; the energy term is the mean squared energy error,
    # at least the squared MAE
    for (_, energy), (_, forces), row in zip(logged["train/loss_energy"], logged["train/loss_forces"], rows):
        assert energy + forces == pytest.approx(row["train_loss"], rel=1e-5)
        assert energy >= row["train_energy_mae"] ** 2 * (1 - 1e-6) and forces > 0


def test_energy_only_run_logs_no_force_term(tmp_path):
    make_trainer(tmp_path, rho=0.0, max_epochs=1).fit()
    logged, rows = scalars(tmp_path / "tensorboard"), read_log(tmp_path)
    # no force term and no training force MAE (NaN in log.csv); validation still reports force errors
    assert "train/loss_forces" not in logged and "train/force_mae" not in logged and "val/force_mae" in logged
    assert logged["train/loss_energy"][0][1] == pytest.approx(rows[0]["train_loss"], rel=1e-6)


def test_resumed_run_logs_each_epoch_once(tmp_path):
    make_trainer(tmp_path, max_epochs=1).fit()
    make_trainer(tmp_path, max_epochs=2).fit(resume=True)
    logged, rows = scalars(tmp_path / "tensorboard"), read_log(tmp_path)
    assert [step for step, _ in logged["val/energy_mae"]] == [int(row["step"]) for row in rows] == [3, 6]
    assert [v for _, v in logged["val/energy_mae"]] == pytest.approx([row["val_energy_mae"] for row in rows], rel=1e-6)


def test_fresh_run_into_the_same_folder_hides_the_earlier_log(tmp_path):
    make_trainer(tmp_path, max_epochs=2).fit()
    make_trainer(tmp_path, max_epochs=1, seed=6).fit()  # a new run (no resume), as --overwrite makes it
    logged, rows = scalars(tmp_path / "tensorboard"), read_log(tmp_path)
    assert len(rows) == 1 and len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert [v for _, v in logged["val/energy_mae"]] == pytest.approx([rows[0]["val_energy_mae"]], rel=1e-6)


def test_no_tensorboard_log_unless_asked(tmp_path):
    make_trainer(tmp_path, max_epochs=1, tensorboard=False).fit()
    assert not (tmp_path / "tensorboard").exists()


def test_missing_tensorboard_package_is_named_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(
        ImportError, match=r"TrainConfig\(tensorboard=True\) needs the tensorboard package.*pip install"
    ):
        TrainConfig(tensorboard=True)
