"""Error metrics accumulated over batches, and the energy standardisation from the training split."""

import math

import numpy as np
import pytest
import torch
from _trainer_tiny_data import synthetic_molecules, tiny_model
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from pyg_schnet.train import ErrorAccumulator, energy_statistics, evaluate, standardize_model


def test_accumulated_errors_equal_numpy_over_all_molecules_and_components():
    gen = torch.Generator().manual_seed(0)
    acc = ErrorAccumulator()
    e_pred, e_true, f_pred, f_true = [], [], [], []
    for sizes in ([3, 2], [4]):
        batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        ep = torch.randn(len(sizes), generator=gen)
        et = torch.randn(len(sizes), generator=gen, dtype=torch.float64) - 1000.0
        fp = torch.randn(batch.numel(), 3, generator=gen)
        ft = torch.randn(batch.numel(), 3, generator=gen)
        acc.update(ep, et, batch, fp, ft)
        e_pred.append(ep.double().numpy())
        e_true.append(et.numpy())
        f_pred.append(fp.double().numpy())
        f_true.append(ft.double().numpy())
    de = np.concatenate(e_pred) - np.concatenate(e_true)
    df = np.concatenate(f_pred) - np.concatenate(f_true)
    m = acc.compute()
    assert m["num_molecules"] == 3
    assert m["energy_mae"] == pytest.approx(np.abs(de).mean(), rel=1e-12)
    assert m["energy_rmse"] == pytest.approx(np.sqrt((de**2).mean()), rel=1e-12)
    assert m["force_mae"] == pytest.approx(np.abs(df).mean(), rel=1e-12)  # over 9 atoms x 3 components
    assert m["force_rmse"] == pytest.approx(np.sqrt((df**2).mean()), rel=1e-12)


def test_without_forces_force_errors_are_nan_and_empty_is_an_error():
    acc = ErrorAccumulator()
    with pytest.raises(ValueError, match="no molecules"):
        acc.compute()
    acc.update(torch.tensor([1.0]), torch.tensor([3.0], dtype=torch.float64), torch.tensor([0, 0]))
    m = acc.compute()
    assert m["energy_mae"] == 2.0 and m["loss"] == 4.0
    assert math.isnan(m["force_mae"]) and math.isnan(m["force_rmse"])


def test_evaluate_matches_per_molecule_predictions():
    data = synthetic_molecules(7, seed=4)
    model = tiny_model().eval()
    model.set_standardization(-3.0, 1.0)
    acc = evaluate(model, DataLoader(data, batch_size=3), with_forces=True, keep_predictions=True)
    errs_e, errs_f = [], []
    for d in data:
        e, f = model.energy_and_forces(d.z, d.pos)
        errs_e.append(abs(float(e) - float(d.energy)))
        errs_f.append((f - d.force).abs().double())
    m = acc.compute()
    assert m["energy_mae"] == pytest.approx(np.mean(errs_e), rel=1e-6)
    assert m["force_mae"] == pytest.approx(float(torch.cat(errs_f).mean()), rel=1e-6)
    assert acc.concatenated()["force_pred"].shape == (sum(d.z.numel() for d in data), 3)


def test_standardisation_is_per_atom_mean_and_std_of_training_energies():
    data = [
        Data(z=torch.tensor([8, 1, 1]), pos=torch.zeros(3, 3), energy=torch.tensor([-30.0], dtype=torch.float64)),
        Data(z=torch.tensor([6, 1]), pos=torch.zeros(2, 3), energy=torch.tensor([-10.0], dtype=torch.float64)),
        Data(z=torch.tensor([1, 1]), pos=torch.zeros(2, 3), energy=torch.tensor([-2.0], dtype=torch.float64)),
    ]
    per_atom = np.array([-10.0, -5.0, -1.0])
    mean, std = energy_statistics(data)
    assert mean == pytest.approx(per_atom.mean()) and std == pytest.approx(per_atom.std(ddof=1))

    atomref = torch.zeros(100)
    atomref[1], atomref[6], atomref[8] = -0.5, -4.0, -20.0
    per_atom_ref = np.array([(-30.0 + 21.0) / 3, (-10.0 + 4.5) / 2, (-2.0 + 1.0) / 2])
    model = tiny_model()
    mean, std = standardize_model(model, data, atomref)
    assert mean == pytest.approx(per_atom_ref.mean()) and std == pytest.approx(per_atom_ref.std(ddof=1))
    assert float(model.mean) == pytest.approx(mean, rel=1e-6)
    assert float(model.std) == pytest.approx(std, rel=1e-6)
    torch.testing.assert_close(model.atomref, atomref)


def test_standardisation_refuses_too_small_atomref_and_warns_on_no_spread():
    data = [Data(z=torch.tensor([8, 1]), pos=torch.zeros(2, 3), energy=torch.tensor([-3.0], dtype=torch.float64))]
    with pytest.raises(ValueError, match="atomref has 5 entries"):
        energy_statistics(data, torch.zeros(5))
    with pytest.warns(RuntimeWarning, match="no spread"):
        assert energy_statistics(data) == (-1.5, 1.0)
