"""Shared fixtures: the real data excerpts in ../shared/data and small molecules from ASE."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
import torch

# The tests run many tiny tensor ops; on a 2-core machine that is busy (CI, a compile) OpenMP threads
# waiting on each other make them 30x slower. One thread is also what makes runs repeatable.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data excerpts (../shared/data beside the checkout); skips when absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data excerpts not found at {SHARED_DATA} (clone beside shared/ to run this test)")
    return SHARED_DATA


def ase_molecule(name: str, dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Atomic numbers and positions (Angstrom) of a molecule from ASE's G2 collection."""
    from ase.build import molecule

    atoms = molecule(name)
    return torch.as_tensor(atoms.numbers, dtype=torch.long), torch.as_tensor(atoms.positions, dtype=dtype)


@pytest.fixture
def molecules() -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Molecules of different sizes (3 to 12 atoms), float64, slightly distorted from equilibrium."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for name in ("H2O", "CH3CH2OH", "C6H6", "CH4"):
        z, pos = ase_molecule(name)
        out.append((z, pos + 0.05 * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)))
    return out
