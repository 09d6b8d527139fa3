"""Training several heads: energy + a dipole from fixed atomic charges on tiny synthetic data; the loss,
the metrics and the standardisation of heads against hand computations; resume; the refusals and the
target-kind warning."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trainer_tiny_data import TINY, UNITS, synthetic_molecules  # noqa: E402

from pyg_schnet import SchNet, load_model  # noqa: E402
from pyg_schnet.train import TrainConfig, Trainer, standardize_model  # noqa: E402
from pyg_schnet.train.heads import TargetKindWarning  # noqa: E402
from pyg_schnet.train.loss import per_molecule_loss  # noqa: E402
from pyg_schnet.train.metrics import ErrorAccumulator, evaluate  # noqa: E402
from pyg_schnet.train.standardize import head_statistics  # noqa: E402

#: the fixed charges (e) per element the synthetic dipoles are made of (neutralised per molecule)
CHARGES = {1: 0.25, 6: -0.15, 8: -0.45}


def with_dipoles(count: int, seed: int = 1):
    """Synthetic molecules with ``data.dipole`` ``[1, 3]`` = sum_i q_i (r_i - r_c) (e*Angstrom) of
    element charges made neutral, and an intensive ``data.gap`` (the mean of a per-element value)."""
    data = synthetic_molecules(count, seed=seed)
    for d in data:
        q = torch.tensor([CHARGES[int(z)] for z in d.z], dtype=torch.float64)
        q = q - q.mean()
        pos = d.pos.double()
        d.dipole = (q[:, None] * (pos - pos.mean(dim=0))).sum(dim=0).reshape(1, 3)
        d.gap = torch.tensor([float(d.z.double().mean())], dtype=torch.float64)
    return data


def dipole_model(seed: int = 0, **kw) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(**TINY, extra_heads=(("dipole", "dipole"),), **kw)
    model.units = dict(UNITS)
    return model


def config(**kw) -> TrainConfig:
    base = dict(
        batch_size=4, rho=0.0, progress=False, patience=None, lr=5e-3, ema_decay=0.5, head_weights={"dipole": 100.0}
    )
    return TrainConfig(**{**base, **kw})


def test_energy_and_dipole_training_reduces_the_dipole_error_and_resumes_exactly(tmp_path):
    data = with_dipoles(16)
    train, val = data[:12], data[12:]

    def run(out, epochs, resume=False):
        model = dipole_model()
        standardize_model(model, train)
        trainer = Trainer(model, train, val, out, config(max_epochs=epochs))
        return trainer, trainer.fit(resume=resume)

    trainer, fit = run(tmp_path / "full", 12)
    first, last = trainer.history[0], trainer.history[-1]
    # the charges are a function of the element: learnable; the error falls several-fold in 36 steps
    assert last["val_dipole_mae"] < 0.3 * first["val_dipole_mae"], (first["val_dipole_mae"], last["val_dipole_mae"])
    assert last["train_dipole_mae"] < first["train_dipole_mae"]
    # the columns are in log.csv, and the best validation errors in the fit result
    with open(tmp_path / "full" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"train_dipole_mae", "val_dipole_mae", "val_dipole_rmse"} <= set(rows[0])
    assert float(rows[-1]["val_dipole_mae"]) == pytest.approx(last["val_dipole_mae"], rel=1e-9)
    assert set(fit.best_val) >= {"dipole_mae", "dipole_rmse", "dipole_norm_mae"}
    # the validation loss holds the head's weighted term: energy part + 100 * mean |mu - mu_hat|^2
    best = trainer.best_model()
    acc = trainer.evaluate(val, model=best)
    metrics = acc.compute()
    expected = metrics["energy_rmse"] ** 2 + 100.0 * 3 * metrics["dipole_rmse"] ** 2
    assert metrics["loss"] == pytest.approx(expected, rel=1e-9)
    # model.pt carries the head; it predicts what the trainer's best model predicts
    loaded = load_model(tmp_path / "full" / "model.pt")
    batch = Batch.from_data_list(val)
    torch.testing.assert_close(
        loaded.predict(batch.z, batch.pos, batch.batch)["dipole"],
        best.predict(batch.z, batch.pos, batch.batch)["dipole"],
        rtol=0,
        atol=0,
    )
    # a run stopped after 5 epochs and resumed ends where the uninterrupted one did (CPU, same seed)
    run(tmp_path / "resumed", 5)
    resumed, fit2 = run(tmp_path / "resumed", 12, resume=True)
    assert fit2.resumed_from_epoch == 5 and fit2.epochs == 12
    state_a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    state_b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    assert set(state_a) == set(state_b) and any(k.startswith("heads.dipole.") for k in state_a)
    for key in state_a:
        torch.testing.assert_close(state_b[key], state_a[key], rtol=0, atol=0)
    assert resumed.history[-1]["val_dipole_mae"] == pytest.approx(last["val_dipole_mae"], rel=1e-12)


def test_resume_with_other_head_weights_is_refused(tmp_path):
    data = with_dipoles(8)
    model = dipole_model()
    Trainer(model, data[:6], data[6:], tmp_path, config(max_epochs=1)).fit()
    again = Trainer(dipole_model(), data[:6], data[6:], tmp_path, config(max_epochs=2, head_weights={"dipole": 1.0}))
    with pytest.raises(ValueError, match="head_weights"):
        again.fit(resume=True)


def test_loss_and_metrics_of_heads_match_hand_computation():
    gen = torch.Generator().manual_seed(0)
    g = 5
    f64 = dict(generator=gen, dtype=torch.float64)
    energy_pred, energy_true = torch.randn(g, **f64), torch.randn(g, **f64)
    mu_pred, mu_true = torch.randn(g, 3, **f64), torch.randn(g, 3, **f64)
    gap_pred, gap_true = torch.randn(g, **f64), torch.randn(g, **f64)
    batch = torch.arange(g)
    outputs, targets = {"mu": mu_pred, "gap": gap_pred}, {"mu": mu_true, "gap": gap_true}
    weights = {"mu": 2.0, "gap": 0.5}
    loss = per_molecule_loss(
        energy_pred, energy_true, batch, head_outputs=outputs, head_targets=targets, head_weights=weights
    )
    by_hand = [
        (energy_pred[m] - energy_true[m]) ** 2
        + 2.0 * sum((mu_pred[m, k] - mu_true[m, k]) ** 2 for k in range(3))
        + 0.5 * (gap_pred[m] - gap_true[m]) ** 2
        for m in range(g)
    ]
    torch.testing.assert_close(loss, torch.stack(by_hand), rtol=1e-12, atol=1e-14)
    acc = ErrorAccumulator(heads={"mu": "dipole", "gap": "intensive"}, head_weights={"mu": 2.0})
    acc.update(energy_pred[:2], energy_true[:2], batch[:2], head_outputs={k: v[:2] for k, v in outputs.items()},
               head_targets={k: v[:2] for k, v in targets.items()})  # fmt: skip
    acc.update(energy_pred[2:], energy_true[2:], torch.arange(3), head_outputs={k: v[2:] for k, v in outputs.items()},
               head_targets={k: v[2:] for k, v in targets.items()})  # fmt: skip
    m = acc.compute()
    diff = mu_pred - mu_true
    assert m["mu_mae"] == pytest.approx(float(diff.abs().mean()), rel=1e-12)
    assert m["mu_rmse"] == pytest.approx(math.sqrt(float(diff.square().mean())), rel=1e-12)
    assert m["mu_norm_mae"] == pytest.approx(float((mu_pred.norm(dim=1) - mu_true.norm(dim=1)).abs().mean()), rel=1e-12)
    assert m["gap_mae"] == pytest.approx(float((gap_pred - gap_true).abs().mean()), rel=1e-12)
    expected_loss = float(((energy_pred - energy_true) ** 2 + 2.0 * (mu_pred - mu_true).square().sum(1)).mean())
    assert m["loss"] == pytest.approx(expected_loss, rel=1e-12)  # gap has no weight: no loss term
    # the totals of two shards add up (data-parallel reduction)
    copy = ErrorAccumulator(heads={"mu": "dipole", "gap": "intensive"}, head_weights={"mu": 2.0})
    copy.set_totals(acc.totals())
    finite = {k: v for k, v in m.items() if not k.startswith("force_")}  # no forces: NaN
    assert {k: copy.compute()[k] for k in finite} == finite


def test_evaluate_reports_head_errors_against_the_model():
    data = with_dipoles(6)
    model = dipole_model().double()
    from torch_geometric.loader import DataLoader

    acc = evaluate(model, DataLoader(data, batch_size=4), with_forces=False, heads={"dipole": "dipole"})
    batch = Batch.from_data_list(data)
    with torch.no_grad():
        mu = model.dipole(batch.z, batch.pos.double(), batch.batch)
    assert acc.compute()["dipole_mae"] == pytest.approx(float((mu - batch.dipole).abs().mean()), rel=1e-9)


def test_standardisation_of_heads():
    data = with_dipoles(9)
    batch = Batch.from_data_list(data)
    # intensive: per-structure mean and std; no atomrefs
    mean, std = head_statistics(data, "intensive", "gap")
    assert mean == pytest.approx(float(batch.gap.mean()), rel=1e-12)
    assert std == pytest.approx(float(batch.gap.std()), rel=1e-12)
    with pytest.raises(ValueError, match="atom references .* extensive targets only"):
        head_statistics(data, "intensive", "gap", torch.zeros(100))
    # dipole: the charge scale sqrt(sum |mu|^2 / sum_m sum_i |r_i - r_c|^2)
    spread = 0.0
    for d in data:
        pos = d.pos.double()
        spread += float((pos - pos.mean(dim=0)).square().sum())
    _, scale = head_statistics(data, "dipole", "dipole")
    assert scale == pytest.approx(math.sqrt(float(batch.dipole.square().sum()) / spread), rel=1e-9)
    # standardize_model sets the primary head and each extra head with a target in the data
    model = SchNet(**TINY, output="intensive", extra_heads=(("dipole", "dipole"), ("other", "extensive")))
    for d in data:
        d.energy = d.gap.clone()
    mean, std = standardize_model(model, data)
    assert float(model.head.mean) == pytest.approx(float(batch.gap.mean()), rel=1e-6)
    assert float(model.heads["dipole"].std) == pytest.approx(scale, rel=1e-6)
    assert float(model.heads["other"].std) == 1.0  # no data.other: left as it was
    with pytest.raises(ValueError, match="intensive"):
        standardize_model(model, data, atomref=torch.zeros(100))


class KindList(list):
    """A list of examples that declares its target's physics, as a data set class does."""

    target_kind = "intensive"


def test_intensive_target_with_sum_pooling_warns(tmp_path):
    data = KindList(synthetic_molecules(6))
    torch.manual_seed(0)
    model = SchNet(**TINY)  # output="extensive": the sum
    model.units = dict(UNITS)
    with pytest.warns(TargetKindWarning, match="intensive .* summed over atoms grows with the molecule's size"):
        Trainer(model, KindList(data[:4]), KindList(data[4:]), tmp_path, config(head_weights={}, max_epochs=1))
    right = SchNet(**TINY, output="intensive")
    right.units = dict(UNITS)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetKindWarning)
        Trainer(right, data, data, tmp_path / "ok", config(head_weights={}, max_epochs=1))


def test_head_settings_are_checked(tmp_path):
    data = with_dipoles(6)
    with pytest.raises(ValueError, match="head_weights names \\['dipol'\\], which are not extra heads"):
        Trainer(dipole_model(), data[:4], data[4:], tmp_path, config(head_weights={"dipol": 1.0}))
    with pytest.raises(ValueError, match="head_weights\\['dipole'\\] must be a finite number >= 0"):
        config(head_weights={"dipole": -1.0})
    bare = synthetic_molecules(6)
    with pytest.raises(ValueError, match="the training examples have no field 'dipole'"):
        Trainer(dipole_model(), bare[:4], bare[4:], tmp_path, config())
    with pytest.raises(ValueError, match="sparse batches only"):
        Trainer(dipole_model(), data[:4], data[4:], tmp_path, config(batching="dense"))
    # a head with weight 0 needs no target and is not trained
    trainer = Trainer(dipole_model(), bare[:4], bare[4:], tmp_path, config(head_weights={"dipole": 0.0}))
    assert trainer.train_heads == {} and trainer.eval_heads == {}


def test_tensorboard_logs_the_head_terms(tmp_path):
    pytest.importorskip("tensorboard", reason="the TensorBoard log needs the tensorboard package")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = with_dipoles(8)
    model = dipole_model()
    standardize_model(model, data[:6])
    trainer = Trainer(model, data[:6], data[6:], tmp_path, config(max_epochs=1, tensorboard=True))
    trainer.fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/dipole_mae", "val/dipole_mae", "val/dipole_rmse", "train/loss_dipole"} <= tags
    row = trainer.history[-1]
    assert events.Scalars("val/dipole_mae")[0].value == pytest.approx(row["val_dipole_mae"], rel=1e-6)
    # the loss terms add up to the training loss (energy + dipole; no forces: rho = 0)
    energy_term = events.Scalars("train/loss_energy")[0].value
    dipole_term = events.Scalars("train/loss_dipole")[0].value
    assert energy_term + dipole_term == pytest.approx(row["train_loss"], rel=1e-5)
