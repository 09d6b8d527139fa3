"""Training on stress (``TrainConfig.stress_weight``, ``pyg-schnet train file --stress-weight``).

The loss term against a hand computation (float64); a short training on EMT-labelled periodic copper
cells (the files of ``test_train_file_protocol``'s ``_copper``) that lowers the stress error against the
same run without the term, with the saved ``model.pt`` predicting stress through the ASE calculator in
eV/Angstrom^3; resume and legacy checkpoints; refusals with their messages; the command end to end.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import List, Tuple

import ase.io
import numpy as np
import pytest
import torch
from _trainer_tiny_data import TINY_FLAGS, synthetic_molecules
from ase import units
from ase.calculators.emt import EMT
from test_train_file_protocol import _copper
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from pyg_schnet import SchNet, load_model
from pyg_schnet.datasets import ASEDataset
from pyg_schnet.io.model_file import CHECKSUM_FIELD, safe_load, seal, write_payload
from pyg_schnet.train import TrainConfig, Trainer, standardize_model
from pyg_schnet.train.loss import energy_force_loss, per_molecule_loss
from pyg_schnet.train.metrics import ErrorAccumulator, evaluate

#: eV per kcal/mol
EV_PER_KCAL = units.kcal / units.mol
N_CELLS, N_TRAIN = 48, 36
QUICK = dict(batch_size=8, lr=5e-3, ema_decay=0.9, patience=None, progress=False, epoch_lines=False)


def tiny_periodic_model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=20, cutoff=4.0, rbf_stop=4.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}  # what ASEDataset converts the eV files to
    return model


@pytest.fixture(scope="module")
def copper(tmp_path_factory) -> Tuple[Path, ASEDataset]:
    """48 EMT copper cells (4 and 8 atoms, strained and rattled) in an extxyz file, read in kcal/mol."""
    path = _copper(tmp_path_factory.mktemp("copper") / "copper.extxyz", N_CELLS)
    return path, ASEDataset(None, path, units="eV", stress_key="stress", log=False)


def _trainer(copper, out: Path, stress_weight: float, max_epochs: int, seed: int = 0, **options) -> Trainer:
    _, ds = copper
    train, val = ds[:N_TRAIN], ds[N_TRAIN:]
    model = tiny_periodic_model(seed)
    standardize_model(model, train)
    config = TrainConfig(stress_weight=stress_weight, max_epochs=max_epochs, seed=seed, **{**QUICK, **options})
    return Trainer(model, train, val, out, config)


def _voigt(stress: torch.Tensor) -> torch.Tensor:
    """ASE's Voigt order (xx, yy, zz, yz, xz, xy) of a 3 x 3 stress."""
    return stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


# ------------------------------------------------------------------------------------------- loss
def test_the_stress_term_is_the_hand_computation():
    gen = torch.Generator().manual_seed(3)
    sizes = [3, 2]
    batch = torch.tensor([0, 0, 0, 1, 1])
    e_pred, e_true = (
        torch.randn(2, generator=gen, dtype=torch.float64),
        torch.randn(2, generator=gen, dtype=torch.float64),
    )
    f_pred, f_true = (torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    s_pred, s_true = (torch.randn(2, 3, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    rho, w_e, w_s = 3.0, 0.5, 7.5
    expected: List[float] = []
    start = 0
    for g, n in enumerate(sizes):
        energy = w_e * (float(e_true[g]) - float(e_pred[g])) ** 2
        force = sum((float(f_true[i, a]) - float(f_pred[i, a])) ** 2 for i in range(start, start + n) for a in range(3))
        stress = sum((float(s_true[g, a, b]) - float(s_pred[g, a, b])) ** 2 for a in range(3) for b in range(3))
        expected.append(energy + rho * force / n + w_s * stress / 9.0)
        start += n
    got = per_molecule_loss(
        e_pred, e_true, batch, rho, f_pred, f_true, w_e, stress_pred=s_pred, stress_true=s_true, stress_weight=w_s
    )
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(expected, rel=1e-12)
    mean = energy_force_loss(
        e_pred, e_true, batch, rho, f_pred, f_true, w_e, stress_pred=s_pred, stress_true=s_true, stress_weight=w_s
    )
    assert float(mean) == pytest.approx(sum(expected) / 2, rel=1e-12)
    # weight 0: the loss without the term, whatever (or whether) stresses are given
    without = per_molecule_loss(e_pred, e_true, batch, rho, f_pred, f_true, w_e)
    assert torch.equal(per_molecule_loss(e_pred, e_true, batch, rho, f_pred, f_true, w_e, stress_pred=s_pred), without)
    # the accumulated errors: MAE and RMSE over the nine components of both structures, and the loss
    acc = ErrorAccumulator(rho=rho, energy_weight=w_e, stress=True, stress_weight=w_s)
    acc.update(e_pred, e_true, batch, f_pred, f_true, stress_pred=s_pred, stress_true=s_true)
    m = acc.compute()
    diff = (s_pred - s_true).reshape(-1).tolist()
    assert m["stress_mae"] == pytest.approx(sum(abs(d) for d in diff) / 18, rel=1e-12)
    assert m["stress_rmse"] == pytest.approx(math.sqrt(sum(d * d for d in diff) / 18), rel=1e-12)
    assert m["loss"] == pytest.approx(sum(expected) / 2, rel=1e-12)
    assert "stress_mae" not in ErrorAccumulator(rho=rho).totals_names and "stress_sq" in acc.totals_names
    with pytest.raises(ValueError, match="tracks the stress: pass stress_pred and stress_true"):
        acc.update(e_pred, e_true, batch, f_pred, f_true)


def test_the_loss_refuses_bad_stress_input():
    batch = torch.tensor([0, 0])
    e = torch.zeros(1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"stress_weight > 0\) needs predicted and reference stress; got None"):
        per_molecule_loss(e, e, batch, stress_weight=1.0, stress_pred=torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match=r"stress must both be \[num_structures=1, 3, 3\]; got prediction \(1, 6\)"):
        per_molecule_loss(
            e, e, batch, stress_weight=1.0, stress_pred=torch.zeros(1, 6), stress_true=torch.zeros(1, 3, 3)
        )
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="stress_weight must be a finite number >= 0"):
            per_molecule_loss(e, e, batch, stress_weight=bad)


# ---------------------------------------------------------------------------------------- training
def test_training_on_stress_lowers_the_stress_error_and_the_calculator_predicts_it(copper, tmp_path):
    from pyg_schnet.simulation.ase import SchNetCalculator

    path, ds = copper
    epochs = 30
    runs = {}
    for weight in (0.0, 1000.0):
        trainer = _trainer(copper, tmp_path / f"w{weight:g}", weight, epochs)
        fit = trainer.fit()
        assert fit.epochs == epochs
        loader = DataLoader(ds[N_TRAIN:], batch_size=50)
        runs[weight] = (trainer, evaluate(trainer.best_model(), loader, with_forces=True, with_stress=True).compute())
    trainer, stressed = runs[1000.0]
    _, plain = runs[0.0]
    spread = float(ds._data.stress.abs().mean())  # kcal/mol/A^3, the scale of the stresses
    # the same seed, the same data: the stress term makes the stress error several times smaller
    # (seeds 0, 1, 2 here: 0.35, 0.06, 0.18 times the error without the term; 0.29, 0.10, 0.22 of the spread)
    assert stressed["stress_mae"] < 0.5 * plain["stress_mae"], (stressed, plain)
    assert stressed["stress_mae"] < 0.4 * spread
    history = trainer.history
    assert history[-1]["val_stress_mae"] < 0.4 * history[0]["val_stress_mae"]
    assert trainer.best_val["stress_mae"] == history[trainer.best_epoch - 1]["val_stress_mae"]
    with open(trainer.log_path) as handle:
        rows = list(csv.DictReader(handle))
    assert {"train_stress_mae", "val_stress_mae", "val_stress_rmse"} <= set(rows[0])
    assert float(rows[-1]["val_stress_mae"]) == pytest.approx(history[-1]["val_stress_mae"], rel=1e-8)
    # the run without the term has no stress columns and never computed a stress
    assert "val_stress_mae" not in runs[0.0][0].history[-1]
    # model.pt through the ASE calculator: eV/A^3 = the model's kcal/mol/A^3 times eV per kcal/mol,
    # and close to EMT's stress on validation cells it never trained on
    model = load_model(trainer.model_path).double()
    assert model.units["energy"] == "kcal/mol"
    frames = ase.io.read(path, index=f"{N_TRAIN}:")
    errors = []
    for atoms in frames[:4]:
        reference = atoms.get_stress()  # EMT's, stored in the file, eV/A^3
        atoms = atoms.copy()
        atoms.calc = SchNetCalculator(trainer.model_path)
        got = atoms.get_stress()
        n = len(atoms)
        _, _, own = model.energy_forces_stress(
            torch.as_tensor(atoms.numbers),
            torch.as_tensor(atoms.positions),
            torch.zeros(n, dtype=torch.long),
            torch.as_tensor(atoms.cell.array).unsqueeze(0),
            torch.as_tensor(atoms.pbc).unsqueeze(0),
        )
        np.testing.assert_allclose(got, (_voigt(own[0]) * EV_PER_KCAL).numpy(), rtol=1e-6, atol=1e-10)
        emt = atoms.copy()
        emt.calc = EMT()
        np.testing.assert_allclose(emt.get_stress(), reference, rtol=1e-6, atol=1e-9)
        errors.append(np.abs(got - reference).mean())
    assert np.mean(errors) < 0.5 * spread * EV_PER_KCAL


def test_resume_keeps_the_stress_weight_and_legacy_checkpoints_had_none(copper, tmp_path):
    out = tmp_path / "run"
    _trainer(copper, out, 1000.0, max_epochs=1).fit()
    with pytest.raises(ValueError, match=r"a resume must keep the settings .* changes stress_weight 1000\.0 -> 10\.0"):
        _trainer(copper, out, 10.0, max_epochs=2).fit(resume=True)
    with pytest.raises(ValueError, match=r"changes stress_weight 1000\.0 -> 0\.0"):
        _trainer(copper, out, 0.0, max_epochs=2).fit(resume=True)
    resumed = _trainer(copper, out, 1000.0, max_epochs=2)
    fit = resumed.fit(resume=True)
    assert fit.resumed_from_epoch == 1 and fit.epochs == 2 and "val_stress_mae" in resumed.history[-1]
    assert safe_load(out / "checkpoint.pt")["train_config"]["stress_weight"] == 1000.0
    # a checkpoint written before the field existed was trained without the stress term
    legacy = tmp_path / "legacy"
    _trainer(copper, legacy, 0.0, max_epochs=1).fit()
    state = safe_load(legacy / "checkpoint.pt")
    del state["train_config"]["stress_weight"]
    state.pop(CHECKSUM_FIELD)
    write_payload(seal(state), legacy / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"changes stress_weight 0\.0 -> 5\.0"):
        _trainer(copper, legacy, 5.0, max_epochs=2).fit(resume=True)
    assert _trainer(copper, legacy, 0.0, max_epochs=2).fit(resume=True).epochs == 2


# ---------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_train_config_refuses_a_negative_or_non_finite_stress_weight(bad):
    with pytest.raises(ValueError, match=r"TrainConfig: stress_weight must be a finite number in \[0, inf\)"):
        TrainConfig(stress_weight=bad)
    with pytest.raises(ValueError, match="stress_weight > 0 computes the stress on sparse batches only"):
        TrainConfig(stress_weight=1.0, batching="dense")


def test_trainer_refuses_structures_without_stress_or_period(copper, tmp_path):
    path, ds = copper
    out = tmp_path / "run"
    molecules = synthetic_molecules(6)
    model = tiny_periodic_model()
    with pytest.raises(ValueError, match=r"stress_weight > 0, but training structure 0 has no 'stress'"):
        Trainer(model, molecules[:4], molecules[4:], out, TrainConfig(stress_weight=1.0, **QUICK))
    # the same copper cells read without --stress-key
    no_stress = ASEDataset(None, path, units="eV", log=False)
    with pytest.raises(ValueError, match=r"training structure 0 has no 'stress': give every structure a cell"):
        Trainer(tiny_periodic_model(), no_stress[:4], no_stress[4:8], out, TrainConfig(stress_weight=1.0, **QUICK))
    # a structure with a stress but no periodic axis
    flat: List[Data] = [ds[k] for k in range(4)]
    flat[2].pbc = torch.zeros(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"training structure 2 is not periodic \(pbc \[False, False, False\]\)"):
        Trainer(tiny_periodic_model(), flat, [ds[5]], out, TrainConfig(stress_weight=1.0, **QUICK))
    # the validation set is checked too (its loss decides early stopping)
    with pytest.raises(ValueError, match=r"but validation structure 1 has no 'stress'"):
        Trainer(tiny_periodic_model(), ds[:4], [ds[4], no_stress[5]], out, TrainConfig(stress_weight=1.0, **QUICK))
    # a model with an extra head
    headed = SchNet(
        cutoff=4.0, hidden_channels=16, num_filters=16, num_interactions=1, extra_heads=(("gap", "intensive"),)
    )
    with pytest.raises(ValueError, match=r"this model has extra heads \(gap\)"):
        Trainer(headed, ds[:4], ds[4:8], out, TrainConfig(stress_weight=1.0, head_weights={"gap": 0.0}, **QUICK))
    assert not out.exists()
    # stress_weight 0 (the default) trains these data without a stress
    assert (
        Trainer(tiny_periodic_model(), no_stress[:4], no_stress[4:8], out, TrainConfig(**QUICK)).train_stress is False
    )


# ---------------------------------------------------------------------------------------- command
def test_train_file_with_a_stress_key_trains_on_the_stress(copper, tmp_path, capsys):
    from pyg_schnet.cli import main
    from pyg_schnet.experiments.protocols.file import STRESS_WEIGHT_DEFAULT

    path, _ = copper
    out, root = tmp_path / "run", tmp_path / "data"
    flags = [str(path), "--units", "eV", "--stress-key", "stress", "--n-train", "24", "--n-val", "8", "--cutoff", "4"]
    common = ["--root", str(root), "--max-epochs", "2", "--batch-size", "8", "--seed", "1", *TINY_FLAGS]
    results = main(["train", "file", *flags, "--out", str(out), "--tensorboard", *common])
    assert "no stress loss" not in capsys.readouterr().out
    assert results["config"]["train"]["stress_weight"] == STRESS_WEIGHT_DEFAULT
    assert results["row"].endswith(f"+ stress (weight {STRESS_WEIGHT_DEFAULT:g} A^6)")
    assert results["units"]["stress"] == "kcal/mol/Angstrom/Angstrom/Angstrom"  # a unit ase.units reads
    assert results["data"]["units"]["stress"] == "kcal/mol/Angstrom/Angstrom/Angstrom"
    test = results["test"]
    assert test["num_molecules"] == N_CELLS - 32
    assert 0 < test["stress_mae"] <= test["stress_rmse"] and math.isfinite(test["stress_rmse"])
    assert math.isfinite(results["training"]["best_val"]["stress_mae"])
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"train_stress_mae", "val_stress_mae", "val_stress_rmse"} <= set(rows[0])
    # TensorBoard: the stress errors and the stress term, which with the energy and force terms makes the loss
    pytest.importorskip("tensorboard", reason="the TensorBoard log needs the tensorboard package")
    from test_train_tensorboard import scalars

    logged = scalars(out / "tensorboard")
    for tag, column in (("val/stress_mae", "val_stress_mae"), ("val/stress_rmse", "val_stress_rmse")):
        assert [v for _, v in logged[tag]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)
    assert "train/stress_mae" in logged
    terms = [logged[f"train/loss_{t}"][-1][1] for t in ("energy", "forces", "stress")]
    assert terms[2] > 0 and sum(terms) == pytest.approx(logged["train/loss"][-1][1], rel=1e-5)
    # --stress-weight 0: the stress is read but not trained on, and no stress metrics appear
    plain = main(["train", "file", *flags, "--stress-weight", "0", "--out", str(tmp_path / "plain"), *common])
    assert plain["config"]["train"]["stress_weight"] == 0.0 and "stress_mae" not in plain["test"]
    assert "stress" not in plain["units"]
    for extra, message in (
        (["--stress-weight", "-1"], r"command line: --stress-weight must be a finite number in \[0, inf\), got -1"),
        (["--stress-weight", "nan"], r"--stress-weight must be a finite number"),
    ):
        with pytest.raises(ValueError, match=message):
            main(["train", "file", *flags, *extra, "--out", str(tmp_path / "bad"), *common])
    no_key = [str(path), "--units", "eV", "--n-train", "24", "--n-val", "8", "--cutoff", "4", "--stress-weight", "5"]
    with pytest.raises(ValueError, match=r"--stress-weight 5 weights a stress loss, but no --stress-key"):
        main(["train", "file", *no_key, "--out", str(tmp_path / "bad"), *common])
    assert not (tmp_path / "bad").exists()
