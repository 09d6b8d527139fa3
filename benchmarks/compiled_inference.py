"""Eager against ``torch.compile``: the MD call and the model's energy-and-forces, ms per call.

    PYTHONPATH=. python benchmarks/compiled_inference.py [--modes default,max-autotune-no-cudagraphs]
        [--reps 100] [--dtype float64] [--json runs/compiled_inference.json] [--quick]

Cases (``--cases``), float64 by default (the calculator's dtype), one thread, eval mode:

- ``ethanol_md``: :class:`pyg_schnet.models.md_evaluator.MDEvaluator` (``"exact"``) at the paper
  configuration, real MD17 frames one after the other (an MD run's changing positions, so the
  Gaussian window changes too), against :func:`pyg_schnet.models.compiled.compile_evaluator`;
- ``ethanol_autograd``: ``SchNet.energy_and_forces`` of the same molecule against
  :func:`pyg_schnet.models.compiled.compile_energy_and_forces`;
- ``periodic_64`` / ``periodic_512``: ``energy_and_forces`` with ``cell``/``pbc`` of random periodic
  structures (``benchmarks/periodic.py``'s generator: 0.1 atoms / A^3, slightly triclinic cell) at
  :data:`harness.configs.PERIODIC` (64/64/3, 5 A cutoff), each call on positions jittered by
  0.02 A, so that the neighbour list (and the number of pairs) changes from call to call.

Per case and mode: the first compiled call's wall time minus an eager call's (the compile seconds),
the compiled code checked against eager (float64: within 1e-10 relative to the largest force, else
the case is refused), then eager and compiled timed in interleaved rounds
(:func:`harness.timing.measure`), the median per call. ``recompiles`` counts the frames dynamo
compiled during the timed calls (:func:`pyg_schnet.models.compiled.compile_counts`): a dynamic-shape
graph that follows changing sizes keeps it at 0 after the first change. ``breaks`` are the graph
breaks of the first compile (host synchronisations such as ``.tolist()``). Dynamo's caches are
reset before each mode, so each mode compiles from scratch. ``--quick``: a tiny model, two rounds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from periodic import random_structure

from harness import environment
from harness.configs import PAPER, PERIODIC, ModelConfig
from harness.peers import md_frames
from harness.timing import measure
from pyg_schnet import SchNet
from pyg_schnet.io.files import atomic_write_text
from pyg_schnet.models import compiled as compiled_inference
from pyg_schnet.models.md_evaluator import MDEvaluator

CASE_NAMES = ("ethanol_md", "ethanol_autograd", "periodic_64", "periodic_512")
#: ``--quick``: 16 features and filters, one interaction, 50 Gaussians (compiles and runs in seconds).
TINY = dict(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=50, output_hidden=8)
#: Positions a periodic case cycles through (jittered copies of one structure).
JITTERED = 16


class Case(NamedTuple):
    """One timed call: ``eager(k)`` and ``make(mode)(k)`` compute at the ``k``-th of ``count`` positions."""

    name: str
    title: str
    atoms: int
    count: int
    eager: Callable[[int], Any]
    make: Callable[[str], Callable[[int], Any]]


def cycling(fn: Callable[[int], Any], count: int) -> Callable[[], Any]:
    """``fn`` at positions ``0, 1, ..., count - 1, 0, ...``, one per call (an MD run's moving atoms)."""
    order = itertools.cycle(range(count))
    return lambda: fn(next(order))


def _model(config: ModelConfig, quick: bool, dtype: torch.dtype, device: torch.device) -> SchNet:
    torch.manual_seed(0)
    kwargs = config.ours_kwargs()
    if quick:
        kwargs.update(TINY)
    return SchNet(**kwargs).to(device=device, dtype=dtype).eval()


def ethanol_cases(quick: bool, dtype: torch.dtype, device: torch.device) -> List[Case]:
    cycle = md_frames(count=64)
    z = torch.as_tensor(cycle.z, device=device)
    frames = [torch.as_tensor(f, dtype=dtype, device=device) for f in cycle.frames]
    model = _model(PAPER, quick, dtype, device)
    evaluator = MDEvaluator(model, z, dtype=dtype)

    def compiled_md(mode: str) -> Callable[[int], Any]:
        fn = compiled_inference.compile_evaluator(evaluator, mode)
        return lambda k: fn(frames[k])

    def compiled_autograd(mode: str) -> Callable[[int], Any]:
        fn = compiled_inference.compile_energy_and_forces(model, mode)
        return lambda k: fn(z, frames[k])

    return [
        Case(
            "ethanol_md",
            "ethanol MD call (MDEvaluator exact, paper config)",
            len(z),
            len(frames),
            lambda k: evaluator(frames[k]),
            compiled_md,
        ),
        Case(
            "ethanol_autograd",
            "ethanol energy_and_forces (autograd, paper config)",
            len(z),
            len(frames),
            lambda k: model.energy_and_forces(z, frames[k]),
            compiled_autograd,
        ),
    ]


def periodic_case(num_atoms: int, quick: bool, dtype: torch.dtype, device: torch.device, seed: int = 0) -> Case:
    pos, cell = random_structure(num_atoms, 0.1, seed)
    rng = np.random.default_rng(seed)
    frames = [
        torch.as_tensor(pos + 0.02 * rng.standard_normal(pos.shape), dtype=dtype, device=device)
        for _ in range(JITTERED)
    ]
    z = torch.as_tensor(rng.choice([1, 6, 7, 8], size=num_atoms), device=device)
    c = torch.as_tensor(cell, dtype=dtype, device=device).unsqueeze(0)
    pbc = torch.ones(1, 3, dtype=torch.bool, device=device)
    model = _model(PERIODIC, quick, dtype, device)

    def compiled(mode: str) -> Callable[[int], Any]:
        fn = compiled_inference.compile_energy_and_forces(model, mode)
        return lambda k: fn(z, frames[k], None, c, pbc)

    return Case(
        f"periodic_{num_atoms}",
        f"{num_atoms}-atom periodic energy_and_forces (autograd, 64/64/3, 5 A cutoff)",
        num_atoms,
        len(frames),
        lambda k: model.energy_and_forces(z, frames[k], None, c, pbc),
        compiled,
    )


def build_cases(names: Sequence[str], quick: bool, dtype: torch.dtype, device: torch.device) -> List[Case]:
    cases: List[Case] = []
    if any(n.startswith("ethanol") for n in names):
        cases += [c for c in ethanol_cases(quick, dtype, device) if c.name in names]
    for name in names:
        if name.startswith("periodic_"):
            cases.append(periodic_case(int(name.split("_")[1]), quick, dtype, device))
    return cases


def max_difference(a: Any, b: Any) -> float:
    """Largest |a - b| over energy and forces, relative to the largest |force| (at least 1)."""
    scale = max(1.0, float(a[1].abs().max()))
    return max(float((x - y).abs().max()) for x, y in zip(a, b)) / scale


def run_case(case: Case, mode: str, reps: int, warmup: int, device: torch.device, tolerance: float) -> Dict[str, Any]:
    torch._dynamo.reset()
    start = time.perf_counter()
    case.eager(0)
    eager_once = time.perf_counter() - start
    before = compiled_inference.compile_counts()
    fn = case.make(mode)
    start = time.perf_counter()
    fn(0)
    first = time.perf_counter() - start
    first_counts = compiled_inference.compile_counts()
    worst = max(max_difference(case.eager(k), fn(k)) for k in range(min(3, case.count)))
    if worst > tolerance:
        raise AssertionError(f"{case.name} [{mode}]: compiled differs from eager by {worst:.2e} (relative)")
    step = cycling(fn, case.count)
    for _ in range(warmup):
        step()
    counts = compiled_inference.compile_counts()
    timed = measure({"eager": cycling(case.eager, case.count), "compiled": step}, device, 0, reps, memory=False)
    after = compiled_inference.compile_counts()
    eager_ms, compiled_ms = 1e3 * timed["eager"]["median_s"], 1e3 * timed["compiled"]["median_s"]
    return dict(
        case=case.name,
        title=case.title,
        atoms=case.atoms,
        mode=mode,
        eager_ms=eager_ms,
        compiled_ms=compiled_ms,
        speedup=eager_ms / compiled_ms,
        compile_s=max(first - eager_once, 0.0),
        first_frames=first_counts["frames"] - before["frames"],
        graph_breaks=first_counts["graph_breaks"] - before["graph_breaks"],
        recompiles=after["frames"] - counts["frames"],
        warmup_frames=counts["frames"] - first_counts["frames"],
        timed_calls=reps,
        max_rel_difference=worst,
    )


def markdown(rows: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['device']}, {meta['threads']} torch thread(s), {meta['dtype']}; date {meta['date']}; "
        f"torch {meta['versions']['torch']}.  ",
        f"Median of {meta['reps']} interleaved calls (eager, compiled) after {meta['warmup']} warm-up calls; "
        "compile s: first compiled call minus one eager call; recompiles: frames dynamo compiled during the "
        "timed calls; breaks: graph breaks of the first compile.",
        "",
        "| case | atoms | mode | eager ms | compiled ms | eager / compiled | compile s | recompiles | breaks "
        "| max difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['title']} | {r['atoms']} | {r['mode']} | {r['eager_ms']:.3f} | {r['compiled_ms']:.3f} | "
            f"{r['speedup']:.2f} | {r['compile_s']:.1f} | {r['recompiles']} | {r['graph_breaks']} | "
            f"{r['max_rel_difference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASE_NAMES), help=f"from {','.join(CASE_NAMES)} (periodic_N: any N)")
    p.add_argument("--modes", default=",".join(compiled_inference.MODES))
    p.add_argument("--reps", type=int, default=None, help="timed rounds (default 100; --quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed compiled calls after the check (default 10)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the rows and the run's facts here")
    p.add_argument("--quick", action="store_true", help="smoke test: a tiny model, two timed rounds")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [c for c in args.cases if c not in CASE_NAMES and not (c.startswith("periodic_") and c[9:].isdigit())]
    bad += [m for m in args.modes if m not in compiled_inference.MODES]
    if bad:
        p.error(f"unknown case(s) or mode(s) {bad}")
    args.reps = args.reps if args.reps is not None else (2 if args.quick else 100)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    meta = environment.run_metadata("benchmarks/compiled_inference.py", argv, device, args.threads)
    meta.update(dtype=args.dtype, reps=args.reps, warmup=args.warmup, quick=args.quick)
    problem = compiled_inference.compiler_unavailable(device)
    if problem is not None:
        raise SystemExit(f"benchmarks/compiled_inference.py: torch.compile cannot run here: {problem}")
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    rows = []
    for case in build_cases(args.cases, args.quick, dtype, device):
        for mode in args.modes:
            row = run_case(case, mode, args.reps, args.warmup, device, tolerance)
            rows.append(row)
            print(
                f"  {case.name:17s} {mode:27s} eager {row['eager_ms']:8.3f} ms  compiled {row['compiled_ms']:8.3f} ms"
                f"  x{row['speedup']:.2f}  compile {row['compile_s']:.1f} s  recompiles {row['recompiles']}"
                f"  breaks {row['graph_breaks']}",
                flush=True,
            )
    table = markdown(rows, meta)
    print("\n" + table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(dict(meta=meta, results=rows), indent=1))
    return rows


if __name__ == "__main__":
    main()
