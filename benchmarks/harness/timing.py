"""Timing with interleaved steps, peak memory of one step, and estimates that skip what cannot fit.

A shared machine's load changes from second to second. :func:`measure` therefore times several
implementations round-robin (one step of each, then the next round), so that a change of load hits all
of them alike and their ratio stays meaningful; it reports the median wall time and the median CPU time
of the process per step (with one thread, time spent waiting for a core counts in the wall time only).

``torch.profiler`` (the CPU memory peak, :mod:`harness.work`'s operator times) logs two lines to the
process's stderr on every start and stop; :func:`profiler_log_filtered` keeps them off the terminal.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

Step = Callable[[], Any]

#: Lines that ``torch.profiler`` itself writes to file descriptor 2, not to Python's ``sys.stderr``:
#: kineto's ``USDT: ... profiler_start`` / ``profiler_stop`` (every profile) and ``STAGE:`` lines, and
#: the CPU allocator's warning (once) that frees of tensors allocated before a profile are not recorded,
#: which :func:`tensor_peak_bytes` already accounts for.
PROFILER_LOG_MARKERS = ("USDT:", "STAGE:", "was allocated before the profiling started")


@contextlib.contextmanager
def profiler_log_filtered() -> Iterator[None]:
    """Keep ``torch.profiler``'s own log lines (:data:`PROFILER_LOG_MARKERS`) off the terminal.

    They come from C++ code writing to file descriptor 2, which no Python-level redirect reaches and
    whose log level (``KINETO_LOG_LEVEL``) is read once, at the first profile of the process, and has no
    setting that hides them but keeps errors. So for the ``with`` block descriptor 2 goes to a temporary
    file; afterwards every line written there that is not one of those is passed on to stderr, so real
    warnings and errors still show (after the block instead of during it).
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (e.g. a process started without one): nothing reaches a terminal
        yield
        return
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            lines = log.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not any(m in line for m in PROFILER_LOG_MARKERS))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class PeakMemory:
    """Peak memory of a block of code above what was in use when it started, in MiB (``.mib``).

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the peak of the bytes held by live tensors,
    from the allocation and free events of PyTorch's CPU allocator (``torch.profiler`` with
    ``profile_memory=True``, summed in time order). Tensor bytes, not the process's resident size:
    the C library may keep freed memory for reuse (:mod:`pyg_schnet.allocator`), so the resident
    size would follow what the allocator holds, not what the step needs. ``None`` where the
    profiler cannot run (e.g. inside another profiler). The profiler's own log lines are filtered
    out (:func:`profiler_log_filtered`).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib: Optional[float] = None
        self.start = 0
        self._profiler: Optional[torch.profiler.profile] = None
        self._quiet = contextlib.ExitStack()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self._quiet.enter_context(profiler_log_filtered())
            try:
                self._profiler = torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
                )
                self._profiler.__enter__()
            except RuntimeError:
                self._profiler = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mib = max(torch.cuda.max_memory_allocated() - self.start, 0) / 2**20
        else:
            with self._quiet:
                if self._profiler is not None:
                    self._profiler.__exit__(*exc)
                    self.mib = tensor_peak_bytes(self._profiler) / 2**20


def tensor_peak_bytes(prof: torch.profiler.profile) -> int:
    """Largest sum of CPU tensor bytes allocated minus freed at any moment of a profile taken with
    ``profile_memory=True``: the peak above the bytes live at its start (PyTorch records no event
    for freeing a tensor allocated before the profile started, so those frees do not lower it)."""
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    steps: Dict[str, Step],
    device: torch.device,
    warmup: int,
    repeats: int,
    items: int = 1,
    memory: bool = True,
    block: int = 1,
) -> Dict[str, Dict[str, Any]]:
    """Time several step functions against each other.

    Each step gets (with ``memory``) one call under :class:`PeakMemory`, then ``warmup`` untimed calls;
    then ``repeats`` timed rounds call every step once each, in turn. ``items`` (molecules per step)
    turns the median time into a throughput. With ``block > 1`` each round calls every step ``block``
    times in a row (each call timed): steps then run in steady state as in a real loop (an MD run calls
    one calculator back to back), while alternating blocks still share the machine's drifts.

    Returns, per step name: ``times_s``, ``cpu_times_s`` (per call), ``median_s``, ``median_cpu_s``,
    ``peak_memory_mib`` (``None`` without ``memory`` or where not measurable) and ``items_per_s``.
    """
    if repeats < 1 or warmup < 0 or block < 1:
        raise ValueError(f"repeats and block must be >= 1 and warmup >= 0, got {repeats}, {block} and {warmup}")
    out: Dict[str, Dict[str, Any]] = {}
    for name, step in steps.items():
        mib = None
        if memory:  # first, so that the timed steps follow the warm-up steps directly
            with PeakMemory(device) as mem:
                step()
            mib = mem.mib
        for _ in range(warmup):
            step()
        out[name] = dict(times_s=[], cpu_times_s=[], peak_memory_mib=mib)
    sync(device)
    for _ in range(repeats):
        for name, step in steps.items():
            for _ in range(block):
                start, cpu_start = time.perf_counter(), time.process_time()
                step()
                sync(device)
                out[name]["times_s"].append(time.perf_counter() - start)
                out[name]["cpu_times_s"].append(time.process_time() - cpu_start)
    for row in out.values():
        row["median_s"] = statistics.median(row["times_s"])
        row["median_cpu_s"] = statistics.median(row["cpu_times_s"])
        row["items_per_s"] = items / row["median_s"]
    return out


@dataclass
class Estimator:
    """Predicts seconds and MiB of a step from earlier steps of the same implementation and mode,
    scaled by a work measure (e.g. the number of pairs) with the highest cost per unit seen so far
    (steps of fewer than ``min_units`` are left out once larger ones exist: their fixed overhead per
    step would make every later estimate too high)."""

    max_memory_mib: float
    max_step_seconds: float
    min_units: float = 1000.0
    seen: Dict[Tuple[str, str], List[Tuple[float, float, Optional[float]]]] = field(default_factory=dict)

    def record(self, impl: str, mode: str, units: float, seconds: float, mib: Optional[float]) -> None:
        self.seen.setdefault((impl, mode), []).append((units, seconds, mib))

    def why_skip(self, impl: str, mode: str, units: float) -> Optional[str]:
        """A reason to skip a step of ``units`` work, or ``None`` to run it."""
        past = [r for r in self.seen.get((impl, mode), []) if r[0] >= self.min_units] or self.seen.get((impl, mode), [])
        if not past:
            return None
        seconds = units * max(s / u for u, s, _ in past)
        if all(m is not None for _, _, m in past):
            mib = units * max(m / u for u, _, m in past)  # type: ignore[operator]
            if mib > self.max_memory_mib:
                return f"estimated peak memory {mib / 1024:.1f} GiB > limit {self.max_memory_mib / 1024:.1f} GiB"
        if seconds > self.max_step_seconds:
            return f"estimated {seconds:.1f} s per step > limit {self.max_step_seconds:.1f} s"
        return None

    def measured(self, impl: str, mode: str) -> bool:
        return bool(self.seen.get((impl, mode)))


def over_time(started: float, max_minutes: Optional[float]) -> Optional[str]:
    """A reason to stop once a run has taken ``max_minutes`` (``None``: no limit)."""
    if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
        return f"the run reached its time budget of {max_minutes:g} min (--max-minutes)"
    return None


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x` (the exponent of a power law)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need at least two (x, y) points of equal count, got {len(x)} and {len(y)}")
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("a log-log slope needs positive values")
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    if den == 0:
        raise ValueError("a log-log slope needs at least two distinct x values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den
