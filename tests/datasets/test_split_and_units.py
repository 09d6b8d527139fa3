"""random_split / SplitIndices (the paper's protocol) and the ScaleUnits transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from pyg_schnet.datasets import EV_TO_KCAL_PER_MOL, HARTREE_TO_KCAL_PER_MOL, ScaleUnits, SplitIndices, random_split


def test_split_sizes_disjoint_and_complete():
    split = random_split(5000, n_train=1000, seed=1)
    assert split.sizes() == (1000, 1000, 3000)
    assert all(t.dtype == torch.long for t in split)
    assert torch.equal(torch.sort(torch.cat(split)).values, torch.arange(5000))
    limited = random_split(5000, n_train=1000, n_val=500, n_test=100, seed=1)
    assert limited.sizes() == (1000, 500, 100)


def test_split_is_seeded():
    a, b = random_split(300, 100, n_val=50, seed=7), random_split(300, 100, n_val=50, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.train, random_split(300, 100, n_val=50, seed=8).train)
    larger = random_split(300, 150, n_val=50, seed=7)
    assert torch.equal(larger.train[:100], a.train)  # a larger N extends the smaller training set


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_examples=1500, n_train=1000), r"n_train=1000 plus n_val=1000 .* 1500 examples"),
        (dict(num_examples=100, n_train=50, n_val=10, n_test=41), r"n_test=41 .*\(only 40 remain\)"),
        (dict(num_examples=100, n_train=-1), r"n_train must be a non-negative integer"),
        (dict(num_examples=100, n_train=1.5), r"n_train must be a non-negative integer"),
    ],
)
def test_split_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_split(**kwargs)


def test_split_save_load_roundtrip(tmp_path):
    split = random_split(2000, 1000, seed=0)
    path = tmp_path / "split.npz"
    split.save(path)
    loaded = SplitIndices.load(path)
    assert all(torch.equal(x, y) for x, y in zip(split, loaded))
    assert [p.name for p in tmp_path.iterdir()] == ["split.npz"]  # no temporary left
    np.savez(tmp_path / "bad.npz", train=np.arange(3), val=np.arange(2))
    with pytest.raises(KeyError, match=r"bad\.npz: split file lacks \['test'\]"):
        SplitIndices.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "float.npz", train=np.arange(3.0), val=np.arange(2), test=np.arange(1))
    with pytest.raises(ValueError, match="'train' must be a 1-D integer array"):
        SplitIndices.load(tmp_path / "float.npz")


def test_scale_units_energy_and_force():
    data = Data(
        z=torch.tensor([1, 8]),
        energy=torch.tensor([-2.0], dtype=torch.float64),
        force=torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]]),
    )
    out = ScaleUnits(EV_TO_KCAL_PER_MOL)(data)
    assert out.energy.dtype == torch.float64 and out.energy.item() == -2.0 * EV_TO_KCAL_PER_MOL
    torch.testing.assert_close(out.force, data.force * EV_TO_KCAL_PER_MOL)  # force follows energy unit
    assert data.energy.item() == -2.0 and data.force[0, 0].item() == 1.0  # input untouched
    separate = ScaleUnits(2.0, force_factor=3.0)(data)
    torch.testing.assert_close(separate.force, data.force * 3.0)
    assert EV_TO_KCAL_PER_MOL == pytest.approx(23.0605, rel=1e-5)
    assert HARTREE_TO_KCAL_PER_MOL == pytest.approx(627.5095, rel=1e-6)


def test_scale_units_qm9_target_and_errors():
    y = torch.arange(15, dtype=torch.float64).view(1, 15)
    out = ScaleUnits(HARTREE_TO_KCAL_PER_MOL, target="U0")(Data(y=y))
    assert out.energy.shape == (1,) and out.energy.item() == 10 * HARTREE_TO_KCAL_PER_MOL
    assert ScaleUnits(1.0, target=14)(Data(y=y)).energy.item() == 14.0
    with pytest.raises(ValueError, match="no 'energy'"):
        ScaleUnits(1.0)(Data(y=y))
    with pytest.raises(ValueError, match=r"needs data.y of shape \[1, >10\]"):
        ScaleUnits(1.0, target="U0")(Data(energy=torch.zeros(1)))
    with pytest.raises(KeyError, match="unknown QM9 target 'E'"):
        ScaleUnits(1.0, target="E")
    with pytest.raises(ValueError, match="finite and non-zero"):
        ScaleUnits(0.0)


def test_split_file_with_pickled_arrays_is_refused_naming_the_file(tmp_path):
    from pyg_schnet.datasets.split import SplitIndices

    path = tmp_path / "split.npz"
    np.savez(path, train=np.array([object()], dtype=object), val=np.arange(2), test=np.arange(2))
    with pytest.raises(ValueError, match=r"split\.npz"):
        SplitIndices.load(path)
