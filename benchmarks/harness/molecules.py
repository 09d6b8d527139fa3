"""Molecules to benchmark on: real frames where the shared data excerpts exist, else stand-ins.

Every maker takes ``(count, rng)`` and returns ``count`` molecules as ``(z, pos)`` pairs (atomic
numbers ``[n]`` int64, positions ``[n, 3]`` Angstrom float64). The cost of a SchNet step depends on the
sizes of the molecules and the number of interacting pairs, not on the chemistry, so random clusters
at a realistic number density stand in for molecules of a given size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Batch, Data

Molecule = Tuple[np.ndarray, np.ndarray]
Maker = Callable[[int, np.random.Generator], List[Molecule]]

# QM9's molecules have 3 to 29 atoms (at most 9 heavy atoms plus hydrogens), about 18 on average with
# a spread of about 3. Without the full data set, sizes are drawn from a normal distribution with that
# mean and spread, rounded and clipped to 3..29 (an approximation of the real histogram).
QM9_MEAN_ATOMS, QM9_STD_ATOMS, QM9_MIN_ATOMS, QM9_MAX_ATOMS = 18.0, 3.0, 3, 29

#: Number density of the random clusters, atoms / Angstrom^3 (liquid ethanol: 0.056).
CLUSTER_DENSITY = 0.06
#: No two atoms of a random cluster are closer than this (Angstrom).
CLUSTER_MIN_DISTANCE = 1.0
CLUSTER_ELEMENTS = (1, 6, 7, 8)
CLUSTER_WEIGHTS = (0.5, 0.3, 0.1, 0.1)  # H : C : N : O = 5 : 3 : 1 : 1
DISTINCT_MOLECULES = 32  # a batch cycles through this many generated molecules


def shared_data_dir() -> Path:
    """The shared data excerpts: ``$PYG_SCHNET_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("PYG_SCHNET_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def md17_ethanol_file(data_dir: Optional[Path] = None) -> Path:
    return (data_dir or shared_data_dir()) / "md17" / "md17_ethanol.npz"


def iso17_file(data_dir: Optional[Path] = None) -> Path:
    return (data_dir or shared_data_dir()) / "iso17" / "iso17_eq_sample.db"


@dataclass
class Case:
    """A kind of molecule: ``make(count, rng)`` draws ``count`` of them."""

    name: str
    description: str
    source: str  # 'real' or 'synthetic'
    make: Maker


def random_cluster(num_atoms: int, rng: np.random.Generator, density: float = CLUSTER_DENSITY) -> Molecule:
    """A random C/H/N/O cluster: ``num_atoms`` points in a sphere at ``density`` atoms / Angstrom^3,
    no two closer than :data:`CLUSTER_MIN_DISTANCE` (random sequential addition)."""
    if num_atoms < 1:
        raise ValueError(f"num_atoms must be positive, got {num_atoms}")
    radius = (3.0 * num_atoms / (4.0 * math.pi * density)) ** (1.0 / 3.0)
    pos = np.empty((num_atoms, 3))
    count = 0
    while count < num_atoms:
        trial = rng.uniform(-radius, radius, size=3)
        if trial @ trial > radius * radius:
            continue
        if count and np.min(np.sum((pos[:count] - trial) ** 2, axis=1)) < CLUSTER_MIN_DISTANCE**2:
            continue
        pos[count] = trial
        count += 1
    z = rng.choice(CLUSTER_ELEMENTS, size=num_atoms, p=CLUSTER_WEIGHTS)
    return z.astype(np.int64), pos


def _cycle(pool: List[Molecule], count: int) -> List[Molecule]:
    return [pool[k % len(pool)] for k in range(count)]


def ethanol_frames(data_dir: Optional[Path] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``(z [9], R [M, 9, 3])`` of the real MD17 ethanol excerpt."""
    with np.load(md17_ethanol_file(data_dir)) as data:
        return data["z"].astype(np.int64), np.asarray(data["R"], dtype=np.float64)


def make_ethanol(count: int, rng: np.random.Generator, data_dir: Optional[Path] = None) -> List[Molecule]:
    z, frames = ethanol_frames(data_dir)
    order = rng.permutation(len(frames))[:count]
    return _cycle([(z, frames[k]) for k in order], count)


def make_iso17(count: int, rng: np.random.Generator, data_dir: Optional[Path] = None) -> List[Molecule]:
    from ase.db import connect

    with connect(str(iso17_file(data_dir))) as db:
        pool = [(row.numbers.astype(np.int64), row.positions.copy()) for row in db.select()]
    order = rng.permutation(len(pool))
    return _cycle([pool[k] for k in order], count)


def make_synthetic_ethanol(count: int, rng: np.random.Generator) -> List[Molecule]:
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    pool = [(atoms.numbers.astype(np.int64), atoms.positions + 0.05 * rng.standard_normal((9, 3))) for _ in range(8)]
    return _cycle(pool, count)


def qm9_sizes(count: int, rng: np.random.Generator) -> np.ndarray:
    sizes = np.rint(rng.normal(QM9_MEAN_ATOMS, QM9_STD_ATOMS, size=count))
    return np.clip(sizes, QM9_MIN_ATOMS, QM9_MAX_ATOMS).astype(int)


def make_qm9(count: int, rng: np.random.Generator) -> List[Molecule]:
    return [random_cluster(int(n), rng) for n in qm9_sizes(count, rng)]


def make_large(num_atoms: int) -> Maker:
    def make(count: int, rng: np.random.Generator) -> List[Molecule]:
        pool = [random_cluster(num_atoms, rng) for _ in range(min(count, DISTINCT_MOLECULES))]
        return _cycle(pool, count)

    return make


def build_cases(large_sizes: Dict[str, int], data_dir: Optional[Path] = None) -> Dict[str, Case]:
    """``ethanol`` (MD17), ``iso17``, ``qm9`` (QM9-like sizes) and random clusters of ``large_sizes``."""
    have_md17 = md17_ethanol_file(data_dir).exists()
    have_iso17 = iso17_file(data_dir).exists()
    cases = {
        "ethanol": Case(
            "ethanol",
            "MD17 ethanol (9 atoms), real conformations from md17_ethanol.npz"
            if have_md17
            else "ethanol (9 atoms), ASE geometry + 0.05 A noise (md17_ethanol.npz not found)",
            "real" if have_md17 else "synthetic",
            (lambda n, rng: make_ethanol(n, rng, data_dir)) if have_md17 else make_synthetic_ethanol,
        ),
        "iso17": Case(
            "iso17",
            "ISO17 C7O2H10 (19 atoms), the 40 real rows of iso17_eq_sample.db, cycled"
            if have_iso17
            else "19-atom random C/H/N/O clusters (iso17_eq_sample.db not found)",
            "real" if have_iso17 else "synthetic",
            (lambda n, rng: make_iso17(n, rng, data_dir)) if have_iso17 else make_large(19),
        ),
        "qm9": Case(
            "qm9",
            f"QM9-like sizes: normal(mean {QM9_MEAN_ATOMS:g}, sd {QM9_STD_ATOMS:g}) rounded, clipped to "
            f"{QM9_MIN_ATOMS}..{QM9_MAX_ATOMS} atoms (approximation of the QM9 histogram); random C/H/N/O "
            "cluster geometries",
            "synthetic",
            make_qm9,
        ),
    }
    for name, n in large_sizes.items():
        cases[name] = Case(
            name,
            f"{n}-atom random C/H/N/O clusters at {CLUSTER_DENSITY} atoms/A^3, min. distance {CLUSTER_MIN_DISTANCE} A",
            "synthetic",
            make_large(n),
        )
    return cases


def make_batch(molecules: List[Molecule], rng: np.random.Generator) -> Batch:
    """A PyG batch with float32 positions and random energy / force targets (what a loader yields;
    the targets do not change the cost of a step)."""
    data = []
    for z, pos in molecules:
        n = len(z)
        data.append(
            Data(
                z=torch.as_tensor(z, dtype=torch.long),
                pos=torch.as_tensor(pos, dtype=torch.float32),
                energy=torch.tensor([float(rng.standard_normal())], dtype=torch.float32),
                forces=torch.as_tensor(rng.standard_normal((n, 3)), dtype=torch.float32),
            )
        )
    return Batch.from_data_list(data)
