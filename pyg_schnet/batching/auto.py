"""Pick sparse or dense batching for a model and a data set from a short measurement.

``--batching auto`` in the training scripts calls :func:`choose_batching` at start-up: it times a few
training steps of each path on the first batches of the loader and returns the faster one. Which path
wins depends on the data (molecule sizes and their spread), the batch size, the model and the
hardware; ``docs/benchmarks.md`` has measured examples.
"""

from __future__ import annotations

import itertools
import time
from typing import Callable, Dict, Iterable, List

import torch
from torch import Tensor

from pyg_schnet.batching.dense import is_periodic, to_dense

#: the clock used for the measurement (a module attribute so tests can replace it)
_clock: Callable[[], float] = time.perf_counter

PATHS = ("sparse", "dense")


def _loss(model: torch.nn.Module, data, path: str, with_forces: bool) -> Tensor:
    """A training loss of one batch on one path: energy (and forces) against zero targets."""
    if path == "sparse":
        if with_forces:
            energy, forces = model.energy_and_forces(data.z, data.pos, data.batch)
            return energy.square().mean() + forces.square().mean()
        return model(data.z, data.pos, data.batch).square().mean()
    dense = to_dense(data)
    if with_forces:
        energy, forces = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
        return energy.square().mean() + forces.square().mean()
    return model.forward_dense(dense.z, dense.pos, dense.mask).square().mean()


def _step(model: torch.nn.Module, data, path: str, with_forces: bool) -> None:
    """One training step without the optimiser: loss, gradients of the parameters (not stored)."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = _loss(model, data, path, with_forces)
    torch.autograd.grad(loss, params, allow_unused=True)


def measure_batching(
    model: torch.nn.Module,
    batches: Iterable,
    with_forces: bool,
    num_batches: int = 3,
    repeats: int = 2,
) -> Dict[str, float]:
    """Seconds per molecule of a training step on each path, ``{'sparse': s, 'dense': s}``.

    Takes the first ``num_batches`` batches (PyG ``Batch`` objects with ``z``, ``pos``, ``batch``)
    of ``batches`` (a loader or a list), runs one untimed warm-up step per path, then ``repeats``
    timed passes over them, alternating the paths so that a change in machine load hits both alike,
    and keeps each path's fastest pass. The model's parameters, their ``.grad`` and its
    training/eval mode are left as they were.
    """
    sample: List = list(itertools.islice(iter(batches), num_batches))
    if not sample:
        raise ValueError("choose_batching needs at least one batch to measure, got none")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    num_molecules = sum(int(b.num_graphs) for b in sample)
    was_training = model.training
    model.train()
    best = {path: float("inf") for path in PATHS}
    try:
        for path in PATHS:  # warm-up: allocator, one-off initialisation
            _step(model, sample[0], path, with_forces)
        for _ in range(repeats):
            for path in PATHS:
                start = _clock()
                for data in sample:
                    _step(model, data, path, with_forces)
                best[path] = min(best[path], _clock() - start)
    finally:
        model.train(was_training)
    return {path: seconds / num_molecules for path, seconds in best.items()}


def choose_batching(
    model: torch.nn.Module,
    loader_or_sample_batches: Iterable,
    with_forces: bool,
    num_batches: int = 3,
    repeats: int = 2,
) -> str:
    """``'sparse'`` or ``'dense'``: the path with the faster training step on these batches.

    Args:
        model: a :class:`pyg_schnet.SchNet`.
        loader_or_sample_batches: a PyG ``DataLoader`` or a sequence of ``Batch`` objects; only the
            first ``num_batches`` are used.
        with_forces: time energy + force training (double backward) instead of energy only.
        num_batches, repeats: size of the measurement (see :func:`measure_batching`).

    Periodic data (a ``pbc`` field with a periodic axis on the first batch) is always ``'sparse'``.
    """
    first = next(iter(loader_or_sample_batches), None)
    if first is not None and is_periodic(first):
        return "sparse"  # the dense path handles molecules only
    timings = measure_batching(model, loader_or_sample_batches, with_forces, num_batches, repeats)
    return min(PATHS, key=lambda path: timings[path])
