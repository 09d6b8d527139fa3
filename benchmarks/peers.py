"""pyg-schnet beside PyG's and SchNetPack's SchNet at the paper's and the common configuration, and
how pyg-schnet scales with the number of atoms at a 5 A cutoff.

The harness is :mod:`harness.peers` and :mod:`harness.scale`; this is their command
line. One process, one torch thread, interleaved steps. SchNetPack is measured when it can be imported:
run this script with the side environment's Python and the repository on ``PYTHONPATH`` (see
docs/benchmarks.md, "SchNetPack side environment")::

    PYTHONPATH=. /work/venv-spk/bin/python benchmarks/peers.py --docs docs/benchmarks.md

writes ``peers.json``/``peers.md``/``scale.json``/``scale.md`` to ``--out`` and, with ``--docs``, replaces
the generated tables of that file (between its ``<!-- bench:peers -->``, ``<!-- bench:work -->`` and
``<!-- bench:scale -->`` markers; ``work.json`` holds the matrix-product analysis of
:mod:`harness.work`) and draws the plots into ``docs/img``. ``--quick`` is a seconds-long smoke test.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from harness import environment, peers, scale, work
from harness.configs import CONFIGS, SCALE
from pyg_schnet import allocator
from pyg_schnet.io.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"paper": 5.0, "common": 3.0}  # issue 10: speed-up over both peers
#: Untimed steps per size and mode of the scale benchmark: the first two steps at a new size still
#: grow the allocator's heap (page faults), the third runs in steady state.
SCALE_WARMUP = 2


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_peers", help="output folder")
    p.add_argument("--docs", type=Path, default=None, help="a markdown file whose generated blocks to replace")
    p.add_argument(
        "--configs", default="paper,common", help="from " + ",".join(n for n in CONFIGS if n in ("paper", "common"))
    )
    p.add_argument("--cases", default=",".join(peers.CASE_NAMES))
    p.add_argument("--impls", default=",".join(peers.IMPLS))
    p.add_argument("--repeats", type=int, default=None, help="timed interleaved steps (default 21)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3)")
    p.add_argument("--md-repeats", type=int, default=None, help="timed rounds of the MD call (default 10 x --repeats)")
    p.add_argument("--batch-size", type=int, default=None, help="override the cases' batch size of 32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-peers", action="store_true", help="only the scale benchmark")
    p.add_argument("--skip-scale", action="store_true", help="no scale benchmark")
    p.add_argument("--skip-work", action="store_true", help="no matrix-product analysis (block bench:work)")
    p.add_argument("--scale-sizes", default=None, help="atoms per system (default 100,300,1000,3000,10000)")
    p.add_argument("--scale-modes", default=",".join(scale.MODES), help="scale: kinds of step to measure")
    p.add_argument("--scale-repeats", type=int, default=None, help="timed steps per size (default 3)")
    p.add_argument("--scale-min-atoms", type=int, default=1000, help="also fit slopes over sizes from this many atoms")
    p.add_argument("--max-memory-gib", type=float, default=8.0, help="scale: skip steps estimated to need more")
    p.add_argument("--max-step-seconds", type=float, default=60.0, help="scale: skip steps estimated to take longer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke test: batches of 4, one timed step, tiny systems")
    args = p.parse_args(argv)
    quick = dict(repeats=1, warmup=0, batch_size=4, scale_sizes="20,40", scale_repeats=1)
    full = dict(repeats=21, warmup=3, batch_size=None, scale_sizes="100,300,1000,3000,10000", scale_repeats=3)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    args.scale_sizes = [int(s) for s in args.scale_sizes.split(",") if s.strip()]
    args.scale_modes = [m.strip() for m in args.scale_modes.split(",") if m.strip()]
    for name, given, allowed in (
        ("config", args.configs, ("paper", "common")),
        ("case", args.cases, peers.CASE_NAMES),
        ("impl", args.impls, peers.IMPLS),
        ("scale mode", args.scale_modes, scale.MODES),
    ):
        bad = [g for g in given if g not in allowed]
        if bad:
            p.error(f"unknown {name}(s) {bad}; choose from {list(allowed)}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1 or args.scale_repeats < 1 or (args.md_repeats or 1) < 1:
        p.error("--repeats, --md-repeats, --scale-repeats and --threads must be >= 1, --warmup >= 0")
    if any(s < 2 for s in args.scale_sizes):
        p.error("--scale-sizes must be at least 2 atoms each")
    return args


def replace_block(text: str, name: str, body: str, path: Path) -> str:
    """Replace what lies between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no block {begin} ... {end} to replace")
    return pattern.sub(lambda _: f"{begin}\n{body.rstrip()}\n{end}", text, count=1)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    if device.type == "cpu":  # every implementation reuses freed pages (see pyg_schnet.allocator)
        allocator.retain_freed_memory()
    img = (args.docs.parent / "img") if args.docs else args.out
    meta = environment.run_metadata("benchmarks/peers.py", argv, device, args.threads)
    meta["versions"]["schnetpack"] = peers.schnetpack_version()
    print(
        f"# {meta['device']}, {args.threads} thread(s), torch {torch.__version__}, "
        f"schnetpack {meta['versions']['schnetpack'] or 'not importable'}",
        flush=True,
    )
    outputs: Dict[str, Any] = {}
    blocks: Dict[str, str] = {}

    if not args.skip_peers:
        started = time.perf_counter()
        rows = []
        configs: Dict[str, Any] = {}
        for name in args.configs:
            print(f"## {name}: {CONFIGS[name].describe()}", flush=True)
            r, info = peers.run_config(
                CONFIGS[name],
                args.cases,
                args.impls,
                device,
                args.warmup,
                args.repeats,
                args.batch_size,
                args.seed,
                args.md_repeats,
            )
            rows += r
            configs[name] = info
        report = dict(
            meta=dict(
                meta,
                repeats=args.repeats,
                md_repeats=args.md_repeats or 10 * args.repeats,
                warmup=args.warmup,
                configs=configs,
                schnetpack_note=peers.schnetpack_note(),
                gaussian_note=peers.GAUSSIAN_NOTE,
                wall_seconds=time.perf_counter() - started,
            ),
            results=rows,
            ratios=peers.ratios(rows),
        )
        blocks["peers"] = peers.write_outputs(report, args.out, img / "peers.png", GOALS)
        outputs["peers"] = report

    if not args.skip_work:
        print("## matrix-product work per training step", flush=True)
        repeats = 3 if args.quick else 11
        rows = work.run_work(
            {name: CONFIGS[name] for name in args.configs},
            args.cases,
            args.impls,
            device,
            args.batch_size,
            args.seed,
            warmup=args.warmup,
            repeats=repeats,
        )
        report = dict(meta=dict(meta, warmup=args.warmup, repeats=repeats), results=rows)
        atomic_write_text(args.out / "work.json", json.dumps(report, indent=1))
        blocks["work"] = work.markdown(report)
        print("\n" + blocks["work"])
        outputs["work"] = report

    if not args.skip_scale:
        print(f"## scale: {SCALE.describe()}", flush=True)
        started = time.perf_counter()
        rows = scale.run_scale(
            SCALE,
            args.scale_sizes,
            device,
            warmup=SCALE_WARMUP if not args.quick else 0,
            repeats=args.scale_repeats,
            max_memory_gib=args.max_memory_gib,
            max_step_seconds=args.max_step_seconds,
            modes=args.scale_modes,
            seed=args.seed,
        )
        report = dict(
            meta=dict(
                meta,
                repeats=args.scale_repeats,
                warmup=SCALE_WARMUP if not args.quick else 0,
                config=dict(description=SCALE.describe(), hyper_parameters=SCALE.ours_kwargs()),
                modes=args.scale_modes,
                wall_seconds=time.perf_counter() - started,
            ),
            results=rows,
            slopes=scale.slopes(rows),
            slopes_large=scale.slopes(rows, args.scale_min_atoms),
            slope_min_atoms=args.scale_min_atoms,
        )
        blocks["scale"] = scale.write_outputs(report, args.out, img / "scale.png")
        outputs["scale"] = report

    if args.docs is not None:
        text = args.docs.read_text()
        for name, body in blocks.items():
            text = replace_block(text, name, body, args.docs)
        atomic_write_text(args.docs, text)
        print(f"updated {args.docs} ({', '.join(blocks)})")
    return outputs


if __name__ == "__main__":
    main()
