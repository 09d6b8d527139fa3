"""Timing with interleaved steps, peak memory of one step, and estimates that skip what cannot fit.

A shared machine's load changes from second to second. :func:`measure` therefore times several
implementations round-robin (one step of each, then the next round), so that a change of load hits all
of them alike and their ratio stays meaningful; it reports the median wall time and the median CPU time
of the process per step (with one thread, time spent waiting for a core counts in the wall time only).
"""
from __future__ import annotations

import ctypes
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

Step = Callable[[], Any]


class PeakMemory:
    """Peak memory of a block of code above what was in use when it started, in MiB (``.mib``).

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the process's peak resident set size (Linux
    ``VmHWM``, reset through ``/proc/self/clear_refs``) minus the resident size at the start, with
    glibc's mmap threshold lowered to 64 KiB inside the block so that freed tensors go back to the
    system and the resident size follows the live tensors. ``None`` where neither is available.
    """

    _libc = None

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib: Optional[float] = None
        self.ok = False
        self.start = 0

    @staticmethod
    def _status(key: str) -> int:
        text = Path("/proc/self/status").read_text()
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if match is None:
            raise OSError(f"/proc/self/status has no {key}")
        return int(match.group(1)) * 1024

    @classmethod
    def set_mmap_threshold(cls, threshold: int) -> None:
        """glibc's ``M_MMAP_THRESHOLD`` (and ``M_TRIM_THRESHOLD`` at twice it), then trim the heap."""
        if cls._libc is None:
            cls._libc = ctypes.CDLL("libc.so.6")
        cls._libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
        cls._libc.mallopt(-1, 2 * threshold)  # M_TRIM_THRESHOLD, as glibc's dynamic setting keeps it
        cls._libc.malloc_trim(0)

    @classmethod
    def steady_allocator(cls) -> None:
        """glibc's steady state (its dynamic mmap threshold tops out at 32 MiB), fixed so that every
        implementation sees the same allocator whatever ran before it. Linux only; a no-op elsewhere."""
        if sys.platform.startswith("linux"):
            try:
                cls.set_mmap_threshold(32 * 1024 * 1024)
            except (OSError, AttributeError):
                pass

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            self.ok = True
        elif sys.platform.startswith("linux"):
            try:
                self.set_mmap_threshold(64 * 1024)
                Path("/proc/self/clear_refs").write_text("5")
                self.start = self._status("VmRSS")
                self.ok = True
            except (OSError, AttributeError):
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.ok:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = self._status("VmHWM")
            self.set_mmap_threshold(32 * 1024 * 1024)
        self.mib = max(peak - self.start, 0) / 2**20


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

    Each step gets ``warmup`` untimed calls and (with ``memory``) one call under :class:`PeakMemory`;
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
        for _ in range(warmup):
            step()
        mib = None
        if memory:
            with PeakMemory(device) as mem:
                step()
            mib = mem.mib
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
        past = [r for r in self.seen.get((impl, mode), []) if r[0] >= self.min_units] or self.seen.get(
            (impl, mode), []
        )
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
