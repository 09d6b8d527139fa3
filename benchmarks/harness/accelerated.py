"""The MD call eager, compiled and CUDA-graphed, and the time of one QM9-sized training epoch:
the measurements ``benchmarks/gpu.py`` adds to the peers table (:mod:`harness.peers`).

- :func:`md_variants`: one ethanol molecule, energy + forces, eval mode, bare calls on device tensors
  prepared beforehand, each call on the next real MD17 frame (:func:`harness.peers.md_frames`): ours
  as :class:`~pyg_schnet.models.md_evaluator.MDEvaluator` eager, compiled
  (:func:`pyg_schnet.models.compiled.compile_evaluator`, one row per mode) and CUDA-graphed
  (:func:`pyg_schnet.models.compiled.capture_md_call`, CUDA only), our model's autograd path, and the
  peers' bare calls (:meth:`harness.adapters.Runner.md_call`), timed in interleaved blocks.
- :func:`qm9_epoch`: every implementation trains one energy-only epoch over ``molecules`` synthetic
  molecules whose sizes follow QM9's (:func:`harness.molecules.qm9_sizes`; geometries from a pool of
  random clusters per size, :func:`qm9_like_dataset`), shuffled, in mini-batches collated by PyG's
  ``DataLoader`` as in training: the epoch's wall time, data loading and collation included.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from harness.adapters import make_runners
from harness.configs import ModelConfig
from harness.molecules import QM9_MAX_ATOMS, QM9_MIN_ATOMS, qm9_sizes, random_cluster
from harness.peers import md_frames
from harness.timing import measure, sync
from pyg_schnet.models import compiled
from pyg_schnet.models.md_evaluator import MDEvaluator

#: Distinct geometries per molecule size in :func:`qm9_like_dataset` (the cost of a step depends on
#: the sizes, not on the chemistry).
GEOMETRIES_PER_SIZE = 8


def md_variants(
    config: ModelConfig,
    impls: Sequence[str],
    device: torch.device,
    modes: Sequence[str],
    warmup: int,
    repeats: int,
    block: int = 30,
    seed: int = 0,
    graphed: bool = True,
) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Rows ``{variant, median_s, ...}`` of the MD call (see the module docstring), float32, and the
    variants not measured with the reason (no CUDA for the graph, a peer that cannot be imported)."""
    runners, skipped = make_runners(impls, config, device)
    cycle = md_frames(seed=seed)
    z = torch.as_tensor(cycle.z, device=device)
    frames = [torch.as_tensor(f, dtype=torch.float32, device=device) for f in cycle.frames]

    def cycling(fn: Callable[[torch.Tensor], Any]) -> Callable[[], Any]:
        order = itertools.cycle(range(len(frames)))
        return lambda: fn(frames[next(order)])

    steps: Dict[str, Callable[[], Any]] = {}
    notes: Dict[str, str] = {}
    ours = runners.get("ours_sparse")
    if ours is not None:
        model = ours.model.eval()
        evaluator = MDEvaluator(model, z)
        steps["ours MDEvaluator eager"] = cycling(evaluator)
        for mode in modes:
            fn = compiled.compile_evaluator(evaluator, mode)
            started = time.perf_counter()
            fn(frames[0])
            sync(device)
            notes[f"ours MDEvaluator compiled ({mode})"] = f"first call (compile) {time.perf_counter() - started:.1f} s"
            steps[f"ours MDEvaluator compiled ({mode})"] = cycling(fn)
        if graphed and device.type == "cuda":
            try:
                steps["ours MDEvaluator CUDA graph"] = cycling(compiled.capture_md_call(evaluator, frames[0]))
            except (RuntimeError, ValueError) as exc:
                skipped["ours MDEvaluator CUDA graph"] = str(exc)
        elif graphed:
            skipped["ours MDEvaluator CUDA graph"] = f"CUDA graphs need a CUDA device (this run: {device})"
        steps["ours model.energy_and_forces"] = cycling(lambda p: model.energy_and_forces(z, p))
    for name, runner in runners.items():
        if name != "ours_sparse":
            steps[f"{runner.label} + autograd"] = cycling(lambda p, r=runner: r.md_call(z, p))
    measured = measure(steps, device, warmup, max(1, repeats // block), block=block, memory=False)
    rows = [
        dict(variant=name, median_s=m["median_s"], median_cpu_s=m["median_cpu_s"], note=notes.get(name, ""))
        for name, m in measured.items()
    ]
    return rows, skipped


def qm9_like_dataset(count: int, seed: int = 0) -> List[Data]:
    """``count`` molecules with QM9's size distribution (:func:`harness.molecules.qm9_sizes`), each a
    copy of one of :data:`GEOMETRIES_PER_SIZE` random clusters of its size, with a random energy."""
    rng = np.random.default_rng(seed)
    pool = {
        n: [random_cluster(n, rng) for _ in range(GEOMETRIES_PER_SIZE)] for n in range(QM9_MIN_ATOMS, QM9_MAX_ATOMS + 1)
    }
    tensors = {
        n: [(torch.as_tensor(z), torch.as_tensor(p, dtype=torch.float32)) for z, p in mols] for n, mols in pool.items()
    }
    sizes = qm9_sizes(count, rng)
    picks = rng.integers(0, GEOMETRIES_PER_SIZE, size=count)
    energies = rng.standard_normal(count)
    return [
        Data(z=tensors[int(n)][k][0], pos=tensors[int(n)][k][1], energy=torch.tensor([float(e)], dtype=torch.float32))
        for n, k, e in zip(sizes, picks, energies)
    ]


def qm9_epoch(
    config: ModelConfig,
    impls: Sequence[str],
    device: torch.device,
    molecules: int,
    batch_size: int = 32,
    seed: int = 0,
    max_batches: Optional[int] = None,
) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """One energy-only training epoch per implementation over :func:`qm9_like_dataset` (see the module
    docstring): rows ``{impl, epoch_s, steps, molecules_per_s}`` and the implementations skipped."""
    runners, skipped = make_runners(impls, config, device)
    dataset = qm9_like_dataset(molecules, seed)
    rows = []
    for name, runner in runners.items():
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
        for batch in itertools.islice(loader, 2):  # warm-up: allocator, lazy initialisation, kernels
            runner.train_step(batch.to(device), with_forces=False)
        sync(device)
        steps = 0
        started = time.perf_counter()
        for batch in itertools.islice(loader, max_batches):
            runner.train_step(batch.to(device), with_forces=False)
            steps += 1
        sync(device)
        seconds = time.perf_counter() - started
        done = min(molecules, steps * batch_size)
        rows.append(
            dict(
                impl=name,
                label=runner.label,
                epoch_s=seconds,
                steps=steps,
                molecules=done,
                molecules_per_s=done / seconds,
            )
        )
        print(f"  QM9-sized epoch {runner.label:12s} {steps} steps {seconds:8.1f} s", flush=True)
    return rows, skipped
