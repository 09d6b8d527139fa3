"""What the compiled kernels buy: our training steps and MD calls with torch-scatter / torch-cluster
against the plain-PyTorch fallback, side by side in one process.

    PYTHONPATH=. .venv/bin/python benchmarks/compiled_kernels.py [--repeats 21] [--json PATH] [--quick]

The switches are :data:`pyg_schnet.backend.USE_TORCH_SCATTER` and :data:`~pyg_schnet.backend.USE_TORCH_CLUSTER`,
read at every call: each timed step sets both (on: the kernels; off: ``index_add`` and the
brute-force pair search) and runs, the two variants of a case interleaved step by step
(:func:`harness.timing.measure`) on the same model and data, one thread. Both variants give the same
numbers (``tests/test_backend.py``). Cases (``--cases``):

- ``ethanol_forces`` / ``qm9_energy``: the peers' training steps (:data:`harness.peers.CASES`), paper
  configuration, batch 32 (small molecules: all pairs, no radius graph; the kernels only aggregate);
- ``md_call``: one ethanol through ``SchNetCalculator`` (:func:`harness.peers.md_steps`), paper config;
- ``cluster_forces`` / ``cluster_md``: a random cluster of ``--cluster-atoms`` atoms (default 1,000) at
  :data:`harness.configs.SCALE` (128/128/6, 5 A cutoff): an E+F training step, and
  ``energy_and_forces`` in eval mode (the radius graph from torch-cluster or the fallback search).

Ratio = fallback time / kernel time (above 1: the kernels are faster). Without the compiled packages
(``/tmp`` venvs, a failed build) only the fallback is timed and the report says why.
``--quick``: batches of 4, 100-atom clusters, two timed rounds (a smoke test, seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from harness import environment, peers
from harness.adapters import OursSparse
from harness.configs import PAPER, SCALE
from harness.molecules import build_cases, make_batch, make_large
from harness.timing import measure
from pyg_schnet import backend
from pyg_schnet.io.files import atomic_write_text

CASE_NAMES = ("ethanol_forces", "qm9_energy", "md_call", "cluster_forces", "cluster_md")


def kernels_unavailable() -> Optional[str]:
    """Why the compiled kernels cannot be timed in this process (``None``: both import)."""
    missing = [
        name
        for name, ok in (("torch-scatter", backend.torch_scatter is not None), ("torch-cluster", backend.cluster()))
        if not ok
    ]
    return None if not missing else f"{' and '.join(missing)} not importable with {sys.executable}"


@contextlib.contextmanager
def switches_restored() -> Iterator[None]:
    """Restore both backend switches after the block."""
    saved = backend.USE_TORCH_SCATTER, backend.USE_TORCH_CLUSTER
    try:
        yield
    finally:
        backend.USE_TORCH_SCATTER, backend.USE_TORCH_CLUSTER = saved


def with_kernels(step: Callable[[], Any], on: bool) -> Callable[[], Any]:
    """``step`` with both switches set to ``on`` for its call."""

    def run() -> Any:
        backend.USE_TORCH_SCATTER = backend.USE_TORCH_CLUSTER = on
        return step()

    return run


def case_steps(name: str, cluster_atoms: int, batch_size: int, device: torch.device, seed: int) -> Callable[[], Any]:
    """The step of case ``name`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if name in ("ethanol_forces", "qm9_energy"):
        case = next(c for c in peers.CASES if c.name == name)
        runner = OursSparse(PAPER, device)
        _, steps = peers.training_case(case, {"ours": runner}, build_cases({}), batch_size, seed, device)
        return steps["ours"]
    if name == "md_call":
        steps, _ = peers.md_steps({"ours_sparse": OursSparse(PAPER, device)}, device, seed)
        return steps["ours_sparse"]
    runner = OursSparse(SCALE, device)
    data = make_batch(make_large(cluster_atoms)(1, rng), rng).to(device)
    if name == "cluster_forces":
        return lambda: runner.train_step(data, True)
    model = runner.model.eval()
    return lambda: model.energy_and_forces(data.z, data.pos, data.batch)


def case_title(name: str, cluster_atoms: int, batch_size: int) -> str:
    return {
        "ethanol_forces": f"ethanol E+F training, batch {batch_size}, paper config",
        "qm9_energy": f"QM9-sized energy training, batch {batch_size}, paper config",
        "md_call": "MD call through SchNetCalculator, ethanol, paper config",
        "cluster_forces": f"{cluster_atoms}-atom cluster E+F training, 128/128/6, 5 A cutoff",
        "cluster_md": f"{cluster_atoms}-atom cluster energy_and_forces (eval), 128/128/6, 5 A cutoff",
    }[name]


def run(args: argparse.Namespace) -> Dict[str, Any]:
    device = torch.device("cpu")
    why = kernels_unavailable()
    meta = environment.run_metadata("benchmarks/compiled_kernels.py", args.argv, device, args.threads)
    meta.update(repeats=args.repeats, warmup=args.warmup, kernels_unavailable=why)
    rows: List[Dict[str, Any]] = []
    with switches_restored():
        for name in args.cases:
            step = case_steps(name, args.cluster_atoms, args.batch_size, device, args.seed)
            variants = {"fallback": with_kernels(step, False)}
            if why is None:
                variants["kernels"] = with_kernels(step, True)
            measured = measure(variants, device, args.warmup, args.repeats, memory=False)
            row: Dict[str, Any] = dict(case=name, title=case_title(name, args.cluster_atoms, args.batch_size))
            for variant, m in measured.items():
                row[f"{variant}_ms"] = 1e3 * m["median_s"]
                row[f"{variant}_cpu_ms"] = 1e3 * m["median_cpu_s"]
            if "kernels_ms" in row:
                row["ratio"] = row["fallback_ms"] / row["kernels_ms"]
                row["ratio_cpu"] = row["fallback_cpu_ms"] / max(row["kernels_cpu_ms"], 1e-12)
            rows.append(row)
            print(
                f"  {name:15s} fallback {row['fallback_ms']:9.2f} ms"
                + (f"  kernels {row['kernels_ms']:9.2f} ms  ratio {row['ratio']:.2f}" if "ratio" in row else ""),
                flush=True,
            )
    return dict(meta=meta, results=rows)


def markdown(report: Dict[str, Any]) -> str:
    meta = report["meta"]
    v = meta["versions"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['device']}, {meta['threads']} torch thread(s), float32; date {meta['date']}; torch "
        f"{v['torch']}, torch-scatter {v.get('torch_scatter') or 'n/a'}, "
        f"torch-cluster {v.get('torch_cluster') or 'n/a'}.  ",
        f"Median of {meta['repeats']} interleaved steps after {meta['warmup']} warm-up steps; ratio = fallback / "
        "kernels, from wall-clock time and, in brackets, CPU time (above 1: the compiled kernels are faster).",
        "",
        "| case | kernels ms | fallback ms | fallback / kernels (CPU) |",
        "|---|---|---|---|",
    ]
    for r in report["results"]:
        kernels = f"{r['kernels_ms']:.2f}" if "kernels_ms" in r else "n/a"
        ratio = f"{r['ratio']:.2f} ({r['ratio_cpu']:.2f})" if "ratio" in r else "-"
        lines.append(f"| {r['title']} | {kernels} | {r['fallback_ms']:.2f} | {ratio} |")
    if meta.get("kernels_unavailable"):
        lines += ["", f"Kernels not timed: {meta['kernels_unavailable']}."]
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASE_NAMES), help=f"from {','.join(CASE_NAMES)}")
    p.add_argument("--repeats", type=int, default=None, help="timed interleaved rounds (default 21; --quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant first (default 3)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default 32; --quick 4)")
    p.add_argument("--cluster-atoms", type=int, default=None, help="atoms of the cluster cases (default 1000)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--quick", action="store_true", help="smoke test: small sizes, two timed rounds")
    args = p.parse_args(argv)
    args.argv = argv
    defaults = (
        dict(repeats=2, warmup=1, batch_size=4, cluster_atoms=100)
        if args.quick
        else dict(repeats=21, warmup=3, batch_size=32, cluster_atoms=1000)
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in CASE_NAMES]
    if bad:
        p.error(f"unknown case(s) {bad}; choose from {list(CASE_NAMES)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(args)
    table = markdown(report)
    print("\n" + table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
