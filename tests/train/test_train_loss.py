"""The training loss is Eq. 5 of the paper, per molecule, averaged over the batch."""

import pytest
import torch

from pyg_schnet.train import energy_force_loss, per_molecule_loss


def two_molecules():
    gen = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 0, 0, 1, 1])  # 3 atoms, then 2 atoms
    e_true = torch.tensor([-97196.25, -40.5], dtype=torch.float64)
    e_pred = torch.tensor([-97195.0, -41.0], dtype=torch.float32)
    f_true = torch.randn(5, 3, generator=gen)
    f_pred = torch.randn(5, 3, generator=gen)
    return batch, e_true, e_pred, f_true, f_pred


@pytest.mark.parametrize("rho", [0.0, 1.0, 100.0])
def test_loss_matches_eq5_by_hand(rho):
    batch, e_true, e_pred, f_true, f_pred = two_molecules()
    expected = []
    for m, atoms in enumerate(([0, 1, 2], [3, 4])):
        energy_term = (float(e_true[m]) - float(e_pred[m])) ** 2
        force_term = sum(sum((float(f_true[i, k]) - float(f_pred[i, k])) ** 2 for k in range(3)) for i in atoms)
        expected.append(energy_term + rho / len(atoms) * force_term)
    per_mol = per_molecule_loss(e_pred, e_true, batch, rho, f_pred, f_true)
    assert per_mol.dtype == torch.float64
    torch.testing.assert_close(per_mol, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    loss = energy_force_loss(e_pred, e_true, batch, rho, f_pred, f_true)
    assert loss.item() == pytest.approx(sum(expected) / 2, rel=1e-12)


def test_energy_difference_is_taken_in_float64():
    # in float32 the target would round to -97196.2578125 (spacing 2^-7 there), a relative change of
    # 5e-5 in the loss; the loss must see the float64 value.
    batch = torch.tensor([0])
    e_true = torch.tensor([-97196.2578], dtype=torch.float64)
    e_pred = torch.tensor([-97196.0], dtype=torch.float32)
    loss = energy_force_loss(e_pred, e_true, batch)
    assert loss.item() == pytest.approx(0.2578**2, rel=1e-9)


def test_rho_zero_needs_no_forces_and_backpropagates():
    batch, e_true, e_pred, _, _ = two_molecules()
    e_pred = e_pred.clone().requires_grad_(True)
    loss = energy_force_loss(e_pred, e_true, batch, rho=0.0)
    loss.backward()
    # d/dE_hat of mean((E - E_hat)^2) = -(E - E_hat) for 2 molecules
    torch.testing.assert_close(e_pred.grad.double(), -(e_true - e_pred.detach().double()), rtol=1e-6, atol=1e-6)


def test_bad_input_is_refused():
    batch, e_true, e_pred, f_true, f_pred = two_molecules()
    with pytest.raises(ValueError, match="needs predicted and reference forces"):
        energy_force_loss(e_pred, e_true, batch, rho=100.0)
    with pytest.raises(ValueError, match="rho must be >= 0"):
        energy_force_loss(e_pred, e_true, batch, rho=-1.0)
    with pytest.raises(ValueError, match="molecules"):
        energy_force_loss(e_pred[:1], e_true, batch)
    with pytest.raises(ValueError, match="forces must both be"):
        energy_force_loss(e_pred, e_true, batch, 1.0, f_pred[:4], f_true)
