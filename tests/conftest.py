"""Shared fixtures: the real data excerpts in ../shared/data and small molecules from ASE."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, List, Tuple

import pytest
import torch

# The tests run many tiny tensor ops; on a 2-core machine that is busy (CI, a compile) OpenMP threads
# waiting on each other make them 30x slower. One thread is also what makes runs repeatable.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# the benchmark harness (benchmarks/harness) is not part of the package: its scripts find it beside
# them, the tests here
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data excerpts (../shared/data beside the checkout); skips when absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data excerpts not found at {SHARED_DATA} (clone beside shared/ to run this test)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_repo_file() -> Callable[[str], ModuleType]:
    """Imports a file of the repository that is no package module (a benchmark script, a docs
    example) from its path relative to the repository root, e.g. ``load_repo_file("benchmarks/peers.py")``."""

    def load(relative: str) -> ModuleType:
        path = REPO / relative
        spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


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
