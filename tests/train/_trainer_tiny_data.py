"""Tiny models and tiny synthetic data for the trainer tests (not a test module).

The data are distorted molecules from ASE's G2 set labelled with a float64 pair potential
``E = sum_{i<j} (d_ij - 1.5)^2 - 7 * n_atoms`` (kcal/mol-like numbers) and its exact forces
``F = -dE/dR`` by autograd, in the dtypes of our data sets (pos and force float32, energy float64).
"""

from __future__ import annotations

from typing import List

import torch
from torch_geometric.data import Data

from pyg_schnet import SchNet

#: Flags that make a benchmark script train a tiny SchNet quickly on one thread (script tests).
TINY_FLAGS = [
    "--hidden-channels",
    "16",
    "--num-filters",
    "16",
    "--num-interactions",
    "1",
    "--num-gaussians",
    "50",
    "--threads",
    "1",
    "--no-progress",
]

TINY = dict(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=50, rbf_stop=6.0, gamma=4.0)


#: The synthetic data's energies are in these units (kcal/mol-like numbers, see the module docstring).
UNITS = {"energy": "kcal/mol", "length": "Angstrom"}


def tiny_model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(**TINY)
    model.units = dict(UNITS)
    return model


def pair_energy(pos: torch.Tensor) -> torch.Tensor:
    n = pos.size(0)
    i, j = torch.triu_indices(n, n, offset=1)
    d = (pos[i] - pos[j]).norm(dim=-1)
    return (d - 1.5).square().sum() - 7.0 * n


def synthetic_molecules(count: int, seed: int = 0) -> List[Data]:
    from ase.build import molecule

    gen = torch.Generator().manual_seed(seed)
    templates = []
    for name in ("H2O", "CH3CH2OH", "CH4"):
        atoms = molecule(name)
        templates.append(
            (torch.as_tensor(atoms.numbers, dtype=torch.long), torch.as_tensor(atoms.positions, dtype=torch.float64))
        )
    out = []
    for k in range(count):
        z, pos0 = templates[k % len(templates)]
        pos = (pos0 + 0.1 * torch.randn(pos0.shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
        energy = pair_energy(pos)
        (grad,) = torch.autograd.grad(energy, pos)
        out.append(Data(z=z, pos=pos.detach().float(), energy=energy.detach().reshape(1), force=(-grad).float()))
    return out
