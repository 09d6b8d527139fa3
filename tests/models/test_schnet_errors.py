"""Bad input gets a clear error naming the atom at fault, never NaN or a silent fix."""
import pytest
import torch

from pyg_schnet import SchNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10).eval()


def water():
    return torch.tensor([8, 1, 1]), torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])


def test_nan_and_inf_positions(model):
    z, pos = water()
    pos[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"atom 2 \(molecule 0\) has a non-finite position"):
        model(z, pos)
    pos[2, 1] = float("inf")
    with pytest.raises(ValueError, match="atom 2"):
        model.energy_and_forces(z, pos)


@pytest.mark.parametrize("bad", [0, 100, -3])
def test_atomic_number_outside_embedding(model, bad):
    z, pos = water()
    z[1] = bad
    with pytest.raises(ValueError, match=rf"atom 1 \(molecule 0\) has atomic number {bad}, outside 1..99"):
        model(z, pos)


def test_mismatched_lengths(model):
    z, pos = water()
    with pytest.raises(ValueError, match="z has 2 atoms but pos has 3"):
        model(z[:2], pos)
    with pytest.raises(ValueError, match="batch has 2 entries"):
        model(z, pos, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"pos must have shape \[num_atoms, 3\]"):
        model(z, pos[:, :2])
    with pytest.raises(ValueError, match="integer"):
        model(z.float(), pos)


def test_unsorted_batch(model):
    z, pos = water()
    with pytest.raises(ValueError, match="atom 2 has molecule 0 after molecule 1"):
        model(z, pos, torch.tensor([0, 1, 0]))


def test_coincident_atoms(model):
    z, pos = water()
    pos[2] = pos[0]
    with pytest.raises(ValueError, match="atoms 0 and 2 of molecule 0 are at the same position"):
        model(z, pos)
    # the same position in two different molecules is fine
    z2 = torch.cat([z[:2], z[:2]])
    p2 = torch.cat([pos[:2], pos[:2]])
    assert torch.isfinite(model(z2, p2, torch.tensor([0, 0, 1, 1]))).all()


def test_neighbour_limit_raises_instead_of_truncating():
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, max_num_neighbors=1)
    z, pos = water()
    with pytest.raises(ValueError, match=r"atom 0 \(molecule 0\) has 2 neighbours.*max_num_neighbors=1"):
        model(z, pos)


def test_unknown_preset_option():
    with pytest.raises(TypeError, match="unknown SchNet options"):
        SchNet.from_paper(hidden=3)
