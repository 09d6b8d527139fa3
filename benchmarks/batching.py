"""Sparse vs dense batching of pyg-schnet, against PyG's SchNet and SchNetPack's, on CPU (or GPU).

For each case (a kind of molecule) and batch size this measures, in one process, the median of
``--repeats`` timed steps after ``--warmup`` untimed ones:

- ``train_energy``: one training step on an energy loss (forward, backward, Adam step);
- ``train_forces``: one training step on an energy + force loss (forces by autograd with
  ``create_graph=True``, so the backward pass is a double backward), Adam step;
- ``inference``: energies only, eval mode, ``torch.no_grad()``;

the process's CPU time of the same steps (a check on the wall-clock ratios when the machine is
shared), and the peak memory of one extra step of each kind (resident set size on CPU, see
:class:`PeakMemory`; ``torch.cuda.max_memory_allocated`` on a GPU). Throughput is molecules per second.

Columns (all float32, all with the same hyper-parameters: 64 features, 64 filters, 3 interactions,
301 Gaussians on 0..30 Angstrom with gamma = 10 / Angstrom^2, cosine cutoff at 30 Angstrom, a 64-32-1
atom-wise head with shifted softplus, sum over atoms):

- ``ours_sparse``: ``pyg_schnet.SchNet(cutoff=30.0)`` on PyG batches (``model(z, pos, batch)``);
- ``ours_dense``: the same model (same class, same initial weights) on padded batches
  (``pyg_schnet.data.to_dense``, timed as part of each step, then ``model.forward_dense``);
- ``pyg``: ``torch_geometric.nn.models.SchNet`` with ``interaction_graph`` set to our graph builder
  (``pyg_schnet.graph.build_graph``: torch-cluster's radius graph, every pair kept) and its Gaussian
  width set to gamma = 10 (its default is 50);
- ``schnetpack``: ``schnetpack.representation.SchNet`` + ``Atomwise`` (+ ``Forces``) in a
  ``NeuralNetworkPotential``, fed the same pairs as ``idx_i``/``idx_j`` (built inside the timed step,
  as for the other sparse columns), Gaussian widths set to gamma = 10. Skipped with the reason when it
  cannot be imported.

Every step builds its interaction graph from positions, as a training loop over a data set does.

Run ``python benchmarks/batching.py --help``; ``--quick`` is a seconds-long smoke test. Results go to
``--out`` as ``batching.json`` (machine-readable), ``batching.md`` (tables) and ``batching.png``
(throughput against molecule size). docs/benchmarks.md quotes a full run.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from torch_geometric.data import Batch, Data

import pyg_schnet
from pyg_schnet import SchNet
from pyg_schnet import _backend
from pyg_schnet.data import to_dense
from pyg_schnet.graph import build_graph, edge_distances

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

HYPER = dict(hidden_channels=64, num_filters=64, num_interactions=3, num_gaussians=301, cutoff=30.0, gamma=10.0)
MODES = ("train_energy", "train_forces", "inference")
IMPLS = ("ours_sparse", "ours_dense", "pyg", "schnetpack")
LARGE_SIZES = {"n50": 50, "n100": 100, "n200": 200, "n500": 500}
ALL_CASES = ("ethanol", "iso17", "qm9", *LARGE_SIZES)

# QM9's molecules have 3 to 29 atoms (at most 9 heavy atoms plus hydrogens), about 18 on average with
# a spread of about 3. Without the full data set we draw sizes from a normal distribution with that
# mean and spread, rounded and clipped to 3..29 (an approximation of the real histogram).
QM9_MEAN_ATOMS, QM9_STD_ATOMS, QM9_MIN_ATOMS, QM9_MAX_ATOMS = 18.0, 3.0, 3, 29

# random clusters: organic number density (liquid ethanol: 0.056 atoms / Angstrom^3), no two atoms
# closer than 1 Angstrom, elements H : C : N : O = 5 : 3 : 1 : 1
CLUSTER_DENSITY = 0.06
CLUSTER_MIN_DISTANCE = 1.0
CLUSTER_ELEMENTS = (1, 6, 7, 8)
CLUSTER_WEIGHTS = (0.5, 0.3, 0.1, 0.1)
DISTINCT_MOLECULES = 32  # a batch cycles through this many generated molecules


# ----------------------------------------------------------------------------------------------
# molecules
# ----------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    description: str
    source: str  # 'real' or 'synthetic'
    make: Callable[[int, np.random.Generator], List[Tuple[np.ndarray, np.ndarray]]]


def random_cluster(num_atoms: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A random C/H/N/O cluster: ``num_atoms`` points in a sphere at :data:`CLUSTER_DENSITY`."""
    radius = (3.0 * num_atoms / (4.0 * math.pi * CLUSTER_DENSITY)) ** (1.0 / 3.0)
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


def _cycle(pool: List[Tuple[np.ndarray, np.ndarray]], count: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    return [pool[k % len(pool)] for k in range(count)]


def make_ethanol(count: int, rng: np.random.Generator):
    path = SHARED_DATA / "md17" / "md17_ethanol.npz"
    data = np.load(path)
    frames = rng.permutation(len(data["R"]))[:count]
    pool = [(data["z"].astype(np.int64), data["R"][k]) for k in frames]
    return _cycle(pool, count)


def make_iso17(count: int, rng: np.random.Generator):
    from ase.db import connect

    with connect(str(SHARED_DATA / "iso17" / "iso17_eq_sample.db")) as db:
        pool = [(row.numbers.astype(np.int64), row.positions.copy()) for row in db.select()]
    order = rng.permutation(len(pool))
    return _cycle([pool[k] for k in order], count)


def make_synthetic_ethanol(count: int, rng: np.random.Generator):
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    pool = [(atoms.numbers.astype(np.int64), atoms.positions + 0.05 * rng.standard_normal((9, 3))) for _ in range(8)]
    return _cycle(pool, count)


def qm9_sizes(count: int, rng: np.random.Generator) -> np.ndarray:
    sizes = np.rint(rng.normal(QM9_MEAN_ATOMS, QM9_STD_ATOMS, size=count))
    return np.clip(sizes, QM9_MIN_ATOMS, QM9_MAX_ATOMS).astype(int)


def make_qm9(count: int, rng: np.random.Generator):
    return [random_cluster(int(n), rng) for n in qm9_sizes(count, rng)]


def make_large(num_atoms: int):
    def make(count: int, rng: np.random.Generator):
        pool = [random_cluster(num_atoms, rng) for _ in range(min(count, DISTINCT_MOLECULES))]
        return _cycle(pool, count)

    return make


def build_cases() -> Dict[str, Case]:
    have_md17 = (SHARED_DATA / "md17" / "md17_ethanol.npz").exists()
    have_iso17 = (SHARED_DATA / "iso17" / "iso17_eq_sample.db").exists()
    cases = {
        "ethanol": Case(
            "ethanol",
            "MD17 ethanol (9 atoms), real conformations from md17_ethanol.npz"
            if have_md17
            else "ethanol (9 atoms), ASE geometry + 0.05 A noise (md17_ethanol.npz not found)",
            "real" if have_md17 else "synthetic",
            make_ethanol if have_md17 else make_synthetic_ethanol,
        ),
        "iso17": Case(
            "iso17",
            "ISO17 C7O2H10 (19 atoms), the 40 real rows of iso17_eq_sample.db, cycled"
            if have_iso17
            else "19-atom random C/H/N/O clusters (iso17_eq_sample.db not found)",
            "real" if have_iso17 else "synthetic",
            make_iso17 if have_iso17 else make_large(19),
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
    for name, n in LARGE_SIZES.items():
        cases[name] = Case(
            name,
            f"{n}-atom random C/H/N/O clusters at {CLUSTER_DENSITY} atoms/A^3, min. distance {CLUSTER_MIN_DISTANCE} A",
            "synthetic",
            make_large(n),
        )
    return cases


def make_batch(molecules: List[Tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> Batch:
    """A PyG batch with float32 positions and random energy / force targets (what a loader yields)."""
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


# ----------------------------------------------------------------------------------------------
# the four implementations
# ----------------------------------------------------------------------------------------------
def _mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().mean()


class Runner:
    """One implementation: a model, an Adam optimiser, and the three kinds of step."""

    name = ""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.model: torch.nn.Module = torch.nn.Identity()
        self.opt: Optional[torch.optim.Optimizer] = None

    def finish_init(self) -> None:
        self.model.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        raise NotImplementedError

    def energy(self, data: Batch) -> Tensor:
        raise NotImplementedError

    def train_step(self, data: Batch, with_forces: bool) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(data, with_forces).backward()
        self.opt.step()

    def inference_step(self, data: Batch) -> None:
        self.model.eval()
        with torch.no_grad():
            self.energy(data)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


class OursSparse(Runner):
    name = "ours_sparse"

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        torch.manual_seed(0)
        self.model = SchNet(**HYPER)
        self.finish_init()

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if with_forces:
            energy, forces = self.model.energy_and_forces(data.z, data.pos, data.batch)
            return _mse(energy, data.energy) + _mse(forces, data.forces)
        return _mse(self.model(data.z, data.pos, data.batch), data.energy)

    def energy(self, data: Batch) -> Tensor:
        return self.model(data.z, data.pos, data.batch)


class OursDense(OursSparse):
    """The same model class (and the same weights: same seed) on padded batches."""

    name = "ours_dense"

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        dense = to_dense(data)
        if with_forces:
            energy, forces = self.model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
            return _mse(energy, data.energy) + _mse(forces[dense.mask], data.forces)
        return _mse(self.model.forward_dense(dense.z, dense.pos, dense.mask), data.energy)

    def energy(self, data: Batch) -> Tensor:
        dense = to_dense(data)
        return self.model.forward_dense(dense.z, dense.pos, dense.mask)


def _graph(pos: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
    """Every pair of a molecule within 30 Angstrom (torch-cluster), both directions, and distances."""
    edge_index = build_graph(pos, batch, HYPER["cutoff"])
    return edge_index, edge_distances(pos, edge_index)


class PyGSchNet(Runner):
    name = "pyg"

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        from torch_geometric.nn.models import SchNet as TGSchNet

        torch.manual_seed(0)
        self.model = TGSchNet(
            hidden_channels=HYPER["hidden_channels"],
            num_filters=HYPER["num_filters"],
            num_interactions=HYPER["num_interactions"],
            num_gaussians=HYPER["num_gaussians"],
            cutoff=HYPER["cutoff"],
            interaction_graph=_graph,
            max_num_neighbors=10**6,  # unused with our graph builder, which never drops a pair
        )
        # its Gaussians have exp(coeff (d - mu)^2) with coeff = -0.5 / spacing^2 = -50; match gamma = 10
        self.model.distance_expansion.coeff = -HYPER["gamma"]
        self.finish_init()

    def _energy(self, data: Batch, pos: Tensor) -> Tensor:
        return self.model(data.z, pos, data.batch).squeeze(-1)

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if not with_forces:
            return _mse(self._energy(data, data.pos), data.energy)
        pos = data.pos.detach().requires_grad_(True)
        energy = self._energy(data, pos)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return _mse(energy, data.energy) + _mse(-grad, data.forces)

    def energy(self, data: Batch) -> Tensor:
        return self._energy(data, data.pos)


_SCHNETPACK_NOTE: Optional[str] = None


def import_schnetpack():
    """Import schnetpack; returns ``(module, note)`` or raises ImportError with the reason.

    schnetpack 2.x imports ``T_co`` from ``torch.utils.data.dataloader``, which newer torch releases
    removed; when that is the only problem, a one-line alias (a covariant ``TypeVar``, what the
    name used to be) lets it import, and the note says so.
    """
    global _SCHNETPACK_NOTE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import schnetpack

            return schnetpack, _SCHNETPACK_NOTE
        except ImportError as exc:
            if "T_co" not in str(exc):
                raise
            import typing

            import torch.utils.data.dataloader as dataloader

            dataloader.T_co = typing.TypeVar("T_co", covariant=True)
            for name in [m for m in sys.modules if m == "schnetpack" or m.startswith("schnetpack.")]:
                del sys.modules[name]
            import schnetpack

            _SCHNETPACK_NOTE = (
                f"schnetpack {schnetpack.__version__} imports torch.utils.data.dataloader.T_co, which "
                f"torch {torch.__version__} no longer has; the benchmark aliased it before importing"
            )
            return schnetpack, _SCHNETPACK_NOTE


class SchNetPack(Runner):
    name = "schnetpack"

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        spk, _ = import_schnetpack()
        self.props = spk.properties
        torch.manual_seed(0)
        representation = spk.representation.SchNet(
            n_atom_basis=HYPER["hidden_channels"],
            n_interactions=HYPER["num_interactions"],
            radial_basis=spk.nn.GaussianRBF(n_rbf=HYPER["num_gaussians"], cutoff=HYPER["cutoff"]),
            cutoff_fn=spk.nn.CosineCutoff(HYPER["cutoff"]),
            n_filters=HYPER["num_filters"],
        )
        # exp(-0.5 (d - mu)^2 / width^2): width = sqrt(0.5 / gamma) gives gamma = 10 (default width 0.1)
        representation.radial_basis.widths.fill_(math.sqrt(0.5 / HYPER["gamma"]))
        head = spk.atomistic.Atomwise(
            n_in=HYPER["hidden_channels"], output_key="energy", activation=spk.nn.shifted_softplus
        )  # 64 -> 32 -> 1, summed over atoms
        pairwise = spk.atomistic.PairwiseDistances
        self.energy_model = spk.model.NeuralNetworkPotential(
            representation=representation, input_modules=[pairwise()], output_modules=[head]
        )
        self.force_model = spk.model.NeuralNetworkPotential(
            representation=representation,
            input_modules=[pairwise()],
            output_modules=[head, spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        )
        self.model = self.force_model  # holds every parameter
        self.finish_init()
        self.energy_model.to(self.device)

    def inputs(self, data: Batch) -> Dict[str, Tensor]:
        p = self.props
        edge_index = build_graph(data.pos, data.batch, HYPER["cutoff"])
        return {
            p.Z: data.z,
            p.R: data.pos.detach().clone(),
            p.idx_i: edge_index[1],
            p.idx_j: edge_index[0],
            p.offsets: data.pos.new_zeros(edge_index.size(1), 3),
            p.n_atoms: torch.bincount(data.batch, minlength=data.num_graphs),
            p.idx_m: data.batch,
        }

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if with_forces:
            out = self.force_model(self.inputs(data))
            return _mse(out["energy"], data.energy) + _mse(out["forces"], data.forces)
        return _mse(self.energy_model(self.inputs(data))["energy"], data.energy)

    def train_step(self, data: Batch, with_forces: bool) -> None:
        self.energy_model.train()
        super().train_step(data, with_forces)

    def inference_step(self, data: Batch) -> None:
        self.energy_model.eval()
        with torch.no_grad():
            self.energy_model(self.inputs(data))


RUNNERS = {"ours_sparse": OursSparse, "ours_dense": OursDense, "pyg": PyGSchNet, "schnetpack": SchNetPack}


# ----------------------------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of a block of code above what was in use when it started, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the process's peak resident set size (Linux
    ``VmHWM``, reset through ``/proc/self/clear_refs``) minus the resident size at the start, with
    glibc's mmap threshold lowered to 64 KiB inside the block so that freed tensors go back to the
    system and the resident size follows the live tensors. ``None`` where neither is available.
    """

    _libc = None

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib: Optional[float] = None

    @staticmethod
    def _status(key: str) -> int:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) * 1024

    @classmethod
    def _mallopt(cls, threshold: int) -> None:
        if cls._libc is None:
            cls._libc = ctypes.CDLL("libc.so.6")
        cls._libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
        cls._libc.mallopt(-1, 2 * threshold)  # M_TRIM_THRESHOLD, as glibc's dynamic setting keeps it
        cls._libc.malloc_trim(0)

    def __enter__(self) -> "PeakMemory":
        self.ok = False
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            self.ok = True
        elif sys.platform.startswith("linux"):
            try:
                self._mallopt(64 * 1024)
                Path("/proc/self/clear_refs").write_text("5")
                self.start = self._status("VmRSS")
                self.ok = True
            except (OSError, AttributeError):
                pass
        return self

    def __exit__(self, *exc) -> None:
        if not self.ok:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = self._status("VmHWM")
            self._mallopt(32 * 1024 * 1024)
        self.mib = max(peak - self.start, 0) / 2**20


def work_units(impl: str, sizes: Sequence[int]) -> float:
    """Pairs an implementation computes for a batch (padding included for the dense path)."""
    if impl == "ours_dense":
        n = max(sizes)
        return len(sizes) * n * (n - 1) / 2
    return float(sum(n * (n - 1) / 2 for n in sizes))


@dataclass
class Estimator:
    """Predicts seconds and MiB of a step from earlier steps of the same implementation and mode,
    scaled by the number of pairs (:func:`work_units`) with the highest per-pair cost seen so far
    (batches of fewer than 1,000 pairs are left out of that once larger ones exist: their fixed
    overhead per step would make every later estimate too high)."""

    max_memory_mib: float
    max_step_seconds: float
    seen: Dict[Tuple[str, str], List[Tuple[float, float, Optional[float]]]] = field(default_factory=dict)

    def record(self, impl: str, mode: str, units: float, seconds: float, mib: Optional[float]) -> None:
        self.seen.setdefault((impl, mode), []).append((units, seconds, mib))

    def why_skip(self, impl: str, mode: str, units: float) -> Optional[str]:
        past = [r for r in self.seen.get((impl, mode), []) if r[0] >= 1000] or self.seen.get((impl, mode), [])
        if not past:
            return None
        # the highest per-pair cost seen so far (it grows with molecule size: conservative)
        seconds = units * max(s / u for u, s, _ in past)
        if all(m is not None for _, _, m in past):
            mib = units * max(m / u for u, _, m in past)
            if mib > self.max_memory_mib:
                return f"estimated peak memory {mib / 1024:.1f} GiB > limit {self.max_memory_mib / 1024:.1f} GiB"
        if seconds > self.max_step_seconds:
            return f"estimated {seconds:.1f} s per step > limit {self.max_step_seconds:.1f} s"
        return None

    def measured(self, impl: str, mode: str) -> bool:
        return bool(self.seen.get((impl, mode)))


def prior_skip(impl: str, units: float, args: argparse.Namespace) -> Optional[str]:
    """A first guard before anything is measured: a force training step in float32 with 301
    Gaussians keeps about 30 kB per atom pair alive in our sparse path (1.2 GiB for 32 molecules of
    50 atoms) and about 40 kB in PyG's and SchNetPack's; these priors round that up."""
    per_pair = 50e3 if impl in ("pyg", "schnetpack") else 40e3
    mib = units * per_pair / 2**20
    if mib > args.max_memory_gib * 1024:
        return f"estimated peak memory {mib / 1024:.1f} GiB > limit {args.max_memory_gib:.1f} GiB"
    return None


def over_time(started: float, max_minutes: Optional[float]) -> Optional[str]:
    if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
        return f"the run reached its time budget of {max_minutes:g} min (--max-minutes)"
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(runner: Runner, mode: str, data: Batch) -> None:
    if mode == "inference":
        runner.inference_step(data)
    else:
        runner.train_step(data, with_forces=(mode == "train_forces"))


def measure(
    runners: Dict[str, Runner], mode: str, data: Batch, warmup: int, repeats: int
) -> Dict[str, Dict[str, Any]]:
    """Time one kind of step of several implementations on the same batch.

    Each implementation gets ``warmup`` untimed steps and one step under :class:`PeakMemory`; then
    the ``repeats`` timed steps go round-robin over the implementations, so that a change in the
    load of a shared machine hits all of them alike.
    """
    if not runners:
        return {}
    device = next(iter(runners.values())).device
    out: Dict[str, Dict[str, Any]] = {}
    for name, runner in runners.items():
        for _ in range(warmup):
            _step(runner, mode, data)
        with PeakMemory(device) as mem:
            _step(runner, mode, data)
        out[name] = dict(times_s=[], cpu_times_s=[], peak_memory_mib=mem.mib)
    sync(device)
    for _ in range(repeats):
        for name, runner in runners.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            _step(runner, mode, data)
            sync(device)
            out[name]["times_s"].append(time.perf_counter() - start)
            out[name]["cpu_times_s"].append(time.process_time() - cpu_start)
    for row in out.values():
        row["median_s"] = statistics.median(row["times_s"])
        row["median_cpu_s"] = statistics.median(row["cpu_times_s"])
        row["molecules_per_s"] = data.num_graphs / row["median_s"]
    return out


# ----------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------
def ratios(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Our throughput divided by each peer's, per case, batch size and mode.

    ``*_vs_*`` keys compare wall-clock throughput; ``*_vs_*_cpu`` keys the same from the process's
    CPU time per step, which a busy shared machine disturbs less (with one thread, waiting for a
    core counts in the wall time only).
    """
    table: Dict[Tuple[str, int, str], Dict[str, Tuple[float, float]]] = {}
    for r in results:
        if r.get("molecules_per_s"):
            speeds = (r["median_s"], r["median_cpu_s"])
            table.setdefault((r["case"], r["batch_size"], r["mode"]), {})[r["impl"]] = speeds
    out = []
    pairs = [(o, p) for o in ("ours_sparse", "ours_dense") for p in ("pyg", "schnetpack")]
    pairs.append(("ours_dense", "ours_sparse"))
    for (case, bs, mode), t in table.items():
        row: Dict[str, Any] = dict(case=case, batch_size=bs, mode=mode)
        for ours, peer in pairs:
            if ours in t and peer in t:
                row[f"{ours}_vs_{peer}"] = t[peer][0] / t[ours][0]
                if t[ours][1] > 0:
                    row[f"{ours}_vs_{peer}_cpu"] = t[peer][1] / t[ours][1]
        out.append(row)
    return out


def _fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def markdown(report: Dict[str, Any]) -> str:
    results = report["results"]
    by_key = {(r["case"], r["batch_size"], r["mode"], r["impl"]): r for r in results}
    ratio = {(r["case"], r["batch_size"], r["mode"]): r for r in report["ratios"]}
    cases = list(dict.fromkeys(r["case"] for r in results))
    sizes = sorted({r["batch_size"] for r in results})
    impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
    unavailable = report["meta"]["unavailable"]
    # rows where nothing could be measured are listed once below the tables, not as table rows
    nothing: Dict[Tuple[str, int], str] = {}
    for case in cases:
        for bs in sizes:
            rows = [r for r in results if r["case"] == case and r["batch_size"] == bs]
            if rows and all(r.get("skipped") for r in rows):
                reasons = [r["skipped"] for r in rows if r["impl"] not in unavailable]
                nothing[case, bs] = min(reasons, key=len) if reasons else "not measured"
    lines = []
    titles = {
        "train_energy": "Training step, energy loss",
        "train_forces": "Training step, energy + force loss (double backward)",
        "inference": "Inference, energies (eval, no_grad)",
    }
    skipped = []
    for mode in MODES:
        lines.append(f"#### {titles[mode]}: molecules/s (ratio: ours / peer)\n")
        head = ["case", "atoms", "B", *impls, "sparse/PyG", "dense/PyG"]
        if "schnetpack" in impls:
            head += ["sparse/SPK", "dense/SPK"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for case in cases:
            for bs in sizes:
                rows = [by_key.get((case, bs, mode, i)) for i in impls]
                if all(r is None for r in rows) or (case, bs) in nothing:
                    continue
                any_row = next(r for r in rows if r is not None)
                cells = [case, any_row["atoms"], str(bs)]
                for i, r in zip(impls, rows):
                    if r is None:
                        cells.append("-")
                    elif i in unavailable:
                        cells.append("n/a")
                    elif r.get("skipped"):
                        cells.append("skip")
                        skipped.append(f"{case}, B={bs}, {mode}, {i}: {r['skipped']}")
                    else:
                        cells.append(_fmt(r["molecules_per_s"], 1 if r["molecules_per_s"] < 100 else 0))
                q = ratio.get((case, bs, mode), {})
                cells += [_fmt(q.get("ours_sparse_vs_pyg"), 2), _fmt(q.get("ours_dense_vs_pyg"), 2)]
                if "schnetpack" in impls:
                    cells += [_fmt(q.get("ours_sparse_vs_schnetpack"), 2), _fmt(q.get("ours_dense_vs_schnetpack"), 2)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("#### The same ratios from CPU time per step (less disturbed by other jobs)\n")
    head = ["case", "B"] + [f"{m} {q}" for m in MODES for q in ("sparse/PyG", "dense/PyG")]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for case in cases:
        for bs in sizes:
            qs = [ratio.get((case, bs, m), {}) for m in MODES]
            if not any(q.get("ours_sparse_vs_pyg_cpu") or q.get("ours_dense_vs_pyg_cpu") for q in qs):
                continue
            cells = [case, str(bs)]
            for q in qs:
                cells += [_fmt(q.get("ours_sparse_vs_pyg_cpu"), 2), _fmt(q.get("ours_dense_vs_pyg_cpu"), 2)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("#### Peak memory of one step, MiB (train_forces / inference)\n")
    head = ["case", "B", *impls]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for case in cases:
        for bs in sizes:
            if (case, bs) in nothing:
                continue
            cells = [case, str(bs)]
            any_found = False
            for i in impls:
                tf = by_key.get((case, bs, "train_forces", i))
                inf = by_key.get((case, bs, "inference", i))
                vals = [
                    _fmt(r.get("peak_memory_mib")) if r is not None and not r.get("skipped") else "-" for r in (tf, inf)
                ]
                any_found = any_found or tf is not None or inf is not None
                cells.append(" / ".join(vals))
            if any_found:
                lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for impl, reason in report["meta"]["unavailable"].items():
        lines.append(f"{impl}: not measured ({reason}).\n")
    if report["meta"].get("schnetpack_note"):
        lines.append(f"Note: {report['meta']['schnetpack_note']}.\n")
    if nothing:
        lines.append("Not measured at all:\n")
        lines.extend(f"- {case}, B={bs}: {reason}" for (case, bs), reason in nothing.items())
        lines.append("")
    if skipped:
        lines.append("Skipped:\n")
        lines.extend(f"- {s}" for s in dict.fromkeys(skipped))
        lines.append("")
    return "\n".join(lines)


def plot(report: Dict[str, Any], path: Path, batch_size: int) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:  # pragma: no cover
        return f"no plot: {exc}"
    labels = {"ours_sparse": "pyg-schnet sparse", "ours_dense": "pyg-schnet dense", "pyg": "PyG SchNet", "schnetpack": "SchNetPack"}
    styles = {"ours_sparse": "o-", "ours_dense": "s-", "pyg": "^--", "schnetpack": "v:"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharex=True)
    colors = {"ours_sparse": "C0", "ours_dense": "C1", "pyg": "C2", "schnetpack": "C3"}
    measured = [r for r in report["results"] if r.get("molecules_per_s")]
    for ax, mode in zip(axes, MODES):
        rows = {(r["case"], r["batch_size"], r["impl"]): r for r in measured if r["mode"] == mode}
        # one batch size per case, the same for every column: the plot's batch size where both our
        # sparse path and PyG's SchNet were measured, else the largest smaller one (labelled)
        chosen: Dict[str, int] = {}
        for case in dict.fromkeys(r["case"] for r in measured):
            both = sorted(
                {bs for (c, bs, i) in rows if c == case and (c, bs, "ours_sparse") in rows and (c, bs, "pyg") in rows}
            )
            anything = sorted({bs for (c, bs, i) in rows if c == case})
            options = both or anything
            if options:
                smaller = [bs for bs in options if bs <= batch_size]
                chosen[case] = smaller[-1] if smaller else options[0]
        for impl in IMPLS:
            line = sorted(
                (rows[c, bs, impl]["mean_atoms"], rows[c, bs, impl]["molecules_per_s"])
                for c, bs in chosen.items()
                if c != "qm9" and (c, bs, impl) in rows
            )
            if line:
                ax.plot([p[0] for p in line], [p[1] for p in line], styles[impl], color=colors[impl], label=labels[impl])
            if "qm9" in chosen and ("qm9", chosen["qm9"], impl) in rows:  # a spread of sizes: not on the line
                r = rows["qm9", chosen["qm9"], impl]
                ax.plot([r["mean_atoms"]], [r["molecules_per_s"]], styles[impl][0], mfc="none", color=colors[impl], ms=9)
        for case, bs in chosen.items():
            r = rows.get((case, bs, "ours_sparse")) or next(v for (c, b, i), v in rows.items() if c == case and b == bs)
            if case == "qm9" or bs != batch_size:
                label = ("QM9 sizes" if case == "qm9" else "") + (f" B={bs}" if bs != batch_size else "")
                ax.annotate(label.strip(), (r["mean_atoms"], r["molecules_per_s"]), textcoords="offset points",
                            xytext=(6, 6), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks: List[float] = []
        for x in sorted({round(r["mean_atoms"]) for r in report["results"]}):
            if not ticks or x > 1.2 * ticks[-1]:
                ticks.append(x)
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("atoms per molecule (mean)")
        ax.set_title(mode.replace("_", " "))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(f"molecules / s (batch size {batch_size} unless labelled)")
    axes[0].legend()
    meta = report["meta"]
    fig.suptitle(f"SchNet throughput, {meta['device']}, {meta['threads']} thread(s), float32 ({meta['date']})")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_batching", help="output folder")
    parser.add_argument("--plot", type=Path, default=None, help="plot file (default: OUT/batching.png)")
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {','.join(ALL_CASES)} (default: all)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default: 32,128,512)")
    parser.add_argument("--impls", default=",".join(IMPLS), help="columns to measure")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement, median reported (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before the memory and timed steps (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores; 1 with --quick)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-memory-gib", type=float, default=8.0, help="skip steps estimated to need more")
    parser.add_argument("--max-step-seconds", type=float, default=4.0, help="skip steps estimated to take longer")
    parser.add_argument(
        "--large-batch-sizes",
        default="1,8",
        help="extra batch sizes for the cases of 100 atoms and more, whose smallest --batch-sizes may not fit",
    )
    parser.add_argument("--plot-batch-size", type=int, default=32, help="batch size shown in the plot")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="skip what is left once the run has taken this long"
    )
    parser.add_argument(
        "--merge-from",
        type=Path,
        default=None,
        help="an earlier batching.json (same settings) whose rows this run keeps where it measured nothing new",
    )
    parser.add_argument(
        "--replot-from", type=Path, default=None, help="measure nothing: redraw the table and plot of a batching.json"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny subset, 1 repeat")
    args = parser.parse_args(argv)
    # --quick: a seconds-long smoke test (ethanol and QM9-like sizes, batches of 4, one timed step)
    defaults = (
        dict(cases="ethanol,qm9", batch_sizes="4", repeats=1, warmup=0, threads=1)
        if args.quick
        else dict(cases=",".join(ALL_CASES), batch_sizes="32,128,512", repeats=5, warmup=1, threads=os.cpu_count() or 1)
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.plot_batch_size = 4
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.large_batch_sizes = [int(b) for b in args.large_batch_sizes.split(",") if b.strip()]
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name, given, allowed in (("case", args.cases, ALL_CASES), ("impl", args.impls, IMPLS), ("mode", args.modes, MODES)):
        bad = [g for g in given if g not in allowed]
        if bad:
            parser.error(f"unknown {name}(s) {bad}; choose from {list(allowed)}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    return args


def merge(old: Dict[str, Any], meta: Dict[str, Any], results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows of an earlier report combined with this run's: for each (case, batch size, column, mode)
    a measured row beats a skipped one, and this run's row beats the earlier one. ``meta['runs']``
    lists every invocation; each row's ``run`` indexes it."""
    old_runs = old["meta"].get("runs") or [
        dict(command=old["meta"]["command"], date=old["meta"]["date"], wall_seconds=old["meta"].get("wall_seconds"))
    ]
    meta["runs"] = meta["runs"] + old_runs
    for name, info in old["meta"].get("cases", {}).items():
        meta["cases"].setdefault(name, info)

    def key(r: Dict[str, Any]) -> Tuple[str, int, str, str]:
        return r["case"], r["batch_size"], r["impl"], r["mode"]

    merged = {key(r): r for r in results}
    for r in old["results"]:
        r = dict(r, run=r.get("run", 0) + 1)
        new = merged.get(key(r))
        if new is None or (new.get("skipped") and not r.get("skipped")):
            merged[key(r)] = r
    order = {name: k for k, name in enumerate(ALL_CASES)}
    return sorted(merged.values(), key=lambda r: (order.get(r["case"], 99), r["batch_size"], IMPLS.index(r["impl"]), MODES.index(r["mode"])))


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} x {model}{mem}"


def write_outputs(report: Dict[str, Any], out: Path, plot_path: Path, plot_batch_size: int, write_json: bool = True) -> None:
    if write_json:
        write_atomic(out / "batching.json", json.dumps(report, indent=1))
    table = markdown(report)
    write_atomic(out / "batching.md", table)
    problem = plot(report, plot_path, plot_batch_size)
    print("\n" + table)
    written = [str(out / "batching.json")] if write_json else []
    written.append(str(out / "batching.md"))
    print("wrote " + ", ".join(written) + (f"; {problem}" if problem else f", {plot_path}"))


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.replot_from is not None:
        report = json.loads(args.replot_from.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        plot_path = args.plot or args.out / "batching.png"
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        write_outputs(report, args.out, plot_path, args.plot_batch_size, write_json=False)
        return report
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_path = args.plot or args.out / "batching.png"
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    if device.type == "cpu":
        # glibc's steady state (its dynamic mmap threshold tops out at 32 MiB), fixed so that every
        # column sees the same allocator whatever ran before it
        PeakMemory._mallopt(32 * 1024 * 1024)

    cases = build_cases()
    runners: Dict[str, Runner] = {}
    unavailable: Dict[str, str] = {}
    for impl in args.impls:
        try:
            runners[impl] = RUNNERS[impl](device)
        except ImportError as exc:
            unavailable[impl] = f"{type(exc).__name__}: {exc}"
            print(f"[{impl}] not measured: {unavailable[impl]}", flush=True)
    versions = {"torch": torch.__version__, "python": platform.python_version(), "pyg_schnet": pyg_schnet.__version__}
    import torch_geometric

    versions["torch_geometric"] = torch_geometric.__version__
    for mod in ("torch_scatter", "torch_cluster"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    if "schnetpack" in runners:
        spk, note = import_schnetpack()
        versions["schnetpack"] = spk.__version__
        if note:
            print(f"[schnetpack] note: {note}", flush=True)

    meta = dict(
        date=_dt.date.today().isoformat(),
        device=machine_description(device),
        device_type=device.type,
        threads=args.threads,
        dtype="float32",
        repeats=args.repeats,
        warmup=args.warmup,
        hyper_parameters=HYPER,
        versions=versions,
        backend=dict(torch_scatter=_backend.USE_TORCH_SCATTER, torch_cluster=_backend.USE_TORCH_CLUSTER),
        parameters={k: r.num_parameters() for k, r in runners.items()},
        unavailable=unavailable,
        schnetpack_note=_SCHNETPACK_NOTE,
        cases={name: dict(description=cases[name].description, source=cases[name].source) for name in args.cases},
        command="python benchmarks/batching.py " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    print(f"# {meta['device']}, {args.threads} thread(s), torch {torch.__version__}", flush=True)

    estimator = Estimator(args.max_memory_gib * 1024, args.max_step_seconds)
    results: List[Dict[str, Any]] = []
    started = time.perf_counter()
    for case_name in args.cases:
        case = cases[case_name]
        print(f"## {case_name}: {case.description}", flush=True)
        batch_sizes = set(args.batch_sizes)
        if LARGE_SIZES.get(case_name, 0) >= 100:
            batch_sizes |= set(args.large_batch_sizes)
        for bs in sorted(batch_sizes):
            rng = np.random.default_rng(args.seed)
            data = make_batch(case.make(bs, rng), rng).to(device)
            sizes = torch.bincount(data.batch).tolist()
            atoms = f"{min(sizes)}-{max(sizes)}" if min(sizes) != max(sizes) else str(sizes[0])
            for mode in args.modes:
                rows: Dict[str, Dict[str, Any]] = {}
                todo: Dict[str, Runner] = {}
                for impl in args.impls:
                    units = work_units(impl, sizes)
                    rows[impl] = dict(
                        case=case_name, batch_size=bs, impl=impl, mode=mode, atoms=atoms,
                        mean_atoms=float(np.mean(sizes)), max_atoms=max(sizes), pairs=units,
                    )
                    reason = (
                        unavailable.get(impl)
                        or (None if estimator.measured(impl, mode) else prior_skip(impl, units, args))
                        or estimator.why_skip(impl, mode, units)
                        or over_time(started, args.max_minutes)
                    )
                    if reason:
                        rows[impl]["skipped"] = reason
                        if impl not in unavailable:
                            print(f"  B={bs:4d} {impl:12s} {mode:13s} skipped: {reason}", flush=True)
                    else:
                        todo[impl] = runners[impl]
                try:
                    measured = measure(todo, mode, data, args.warmup, args.repeats)
                except RuntimeError as exc:  # out of memory on a GPU, for instance
                    reason = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                    print(f"  B={bs:4d} {mode:13s} {reason}", flush=True)
                    measured = {}
                    for impl in todo:
                        rows[impl]["skipped"] = reason
                for impl, m in measured.items():
                    row = rows[impl]
                    row.update(m)
                    estimator.record(impl, mode, row["pairs"], row["median_s"], row["peak_memory_mib"])
                    mem = "-" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f} MiB"
                    print(
                        f"  B={bs:4d} {impl:12s} {mode:13s} {row['molecules_per_s']:10.1f} mol/s "
                        f"({row['median_s'] * 1e3:8.1f} ms/step, peak {mem})",
                        flush=True,
                    )
                results.extend(rows.values())
            del data
    meta["wall_seconds"] = time.perf_counter() - started
    meta["runs"] = [dict(command=meta["command"], date=meta["date"], wall_seconds=meta["wall_seconds"])]
    for row in results:
        row["run"] = 0
    if args.merge_from is not None:
        results = merge(json.loads(args.merge_from.read_text()), meta, results)
    report = dict(meta=meta, results=results, ratios=ratios(results))
    write_outputs(report, args.out, plot_path, args.plot_batch_size)
    return report


if __name__ == "__main__":
    main()
