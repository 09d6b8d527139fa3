"""The GPU benchmark: the peers table on CUDA, the MD call eager / compiled / CUDA-graphed, and the
time of one QM9-sized training epoch, in one command.

    PYTHONPATH=. python benchmarks/gpu.py [--out runs/bench_gpu]        # on a machine with a CUDA GPU
    PYTHONPATH=. python benchmarks/gpu.py --dry-run                     # the set-up path on the CPU, seconds

Without CUDA it refuses (exit status 2) unless ``--dry-run`` (or ``--device cpu --quick``) asks for
the CPU smoke run: tiny sizes, one timed step, no compilation. Parts, all float32, one process:

1. **Peers** (:func:`harness.peers.run_config`, the same harness, cases and Gaussian width as
   ``benchmarks/peers.py``: PyG's and SchNetPack's widths set to our gamma): ethanol E+F and ISO17 E+F
   training and QM9-sized energy training at batch 32 and at batch 256, and the MD call through
   ``SchNetCalculator``, at the paper's and the common configuration. SchNetPack where it imports.
2. **MD call variants** (:func:`harness.accelerated.md_variants`): bare calls on device tensors, ours
   ``MDEvaluator`` eager, compiled (``--modes``) and replayed from a CUDA graph, our autograd path,
   the peers' autograd calls. Training is not compiled: E+F training needs a double backward, which
   ``torch.compile`` does not support.
3. **QM9-sized epoch** (:func:`harness.accelerated.qm9_epoch`): 110,000 **synthetic** molecules with
   QM9's size distribution (random C/H/N/O clusters, not QM9's molecules), energy-only, batch 32,
   shuffled, PyG's ``DataLoader``: the epoch's wall time per implementation.

Writes ``gpu.json`` and ``gpu.md`` to ``--out`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from harness import accelerated, environment, peers
from harness.configs import CONFIGS
from pyg_schnet.io.files import atomic_write_text
from pyg_schnet.models import compiled

ROOT = Path(__file__).resolve().parents[1]
#: Training cases of the peers part (the MD call is measured once, at batch size 1).
TRAIN_CASES = ("ethanol_forces", "iso17_forces", "qm9_energy")
#: Molecules of the QM9-sized epoch (QM9's 130,831 molecules less validation and test, about 110,000).
QM9_EPOCH_MOLECULES = 110_000
NO_CUDA = (
    "benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False, torch {version}); run it on a "
    "machine with a GPU, or pass --dry-run (= --device cpu --quick) to check its set-up path on the CPU"
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_gpu", help="output folder")
    p.add_argument("--device", default="cuda")
    p.add_argument("--configs", default="paper,common")
    p.add_argument("--impls", default=",".join(peers.IMPLS))
    p.add_argument("--batch-sizes", default="32,256", help="training batch sizes of the peers part")
    p.add_argument("--modes", default=",".join(compiled.MODES), help="torch.compile modes of the MD call")
    p.add_argument("--repeats", type=int, default=None, help="timed interleaved training steps (default 21)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5)")
    p.add_argument("--md-repeats", type=int, default=None, help="timed MD calls per variant (default 600)")
    p.add_argument("--epoch-molecules", type=int, default=None, help=f"default {QM9_EPOCH_MOLECULES:,}")
    p.add_argument("--epoch-batch-size", type=int, default=32)
    p.add_argument("--skip", default="", help="parts to leave out: peers, md, epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one timed step, no compilation")
    p.add_argument("--dry-run", action="store_true", help="= --device cpu --quick: the set-up path on the CPU")
    args = p.parse_args(argv)
    if args.dry_run:
        args.device, args.quick = "cpu", True
    quick = dict(repeats=1, warmup=0, md_repeats=2, epoch_molecules=64)
    full = dict(repeats=21, warmup=5, md_repeats=600, epoch_molecules=QM9_EPOCH_MOLECULES)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.modes = [] if args.quick else [m.strip() for m in args.modes.split(",") if m.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        args.configs, args.batch_sizes = args.configs[:1], [2, 4]
        args.threads = args.threads or 1
    for name, given, allowed in (
        ("config", args.configs, ("paper", "common")),
        ("impl", args.impls, peers.IMPLS),
        ("mode", args.modes, compiled.MODES),
        ("part", sorted(args.skip), ("peers", "md", "epoch")),
    ):
        bad = [g for g in given if g not in allowed]
        if bad:
            p.error(f"unknown {name}(s) {bad}; choose from {list(allowed)}")
    return args


def md_markdown(rows: List[Dict[str, Any]], skipped: Dict[str, str], config: str) -> str:
    lines = [
        f"MD call variants, {config} configuration, one ethanol (bare calls on device tensors, float32):",
        "",
        "| variant | ms per call | note |",
        "|---|---|---|",
    ]
    lines += [f"| {r['variant']} | {r['median_s'] * 1e3:.3f} | {r['note']} |" for r in rows]
    lines += [f"| {name} | not measured | {why} |" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def epoch_markdown(rows: List[Dict[str, Any]], skipped: Dict[str, str], molecules: int, batch: int) -> str:
    lines = [
        f"QM9-sized epoch: {molecules:,} synthetic molecules (QM9's size distribution, random C/H/N/O "
        f"clusters, not QM9 itself), energy-only training, batch {batch}, paper configuration:",
        "",
        "| implementation | steps | epoch s | molecules / s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['label']} | {r['steps']} | {r['epoch_s']:.1f} | {r['molecules_per_s']:,.0f} |" for r in rows]
    lines += [f"| {name} | - | not measured: {why} | - |" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(NO_CUDA.format(version=torch.__version__))
    if device.type != "cuda" and not args.quick:
        raise SystemExit("benchmarks/gpu.py measures a GPU: use --device cuda, or --dry-run for the CPU smoke run")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = environment.run_metadata("benchmarks/gpu.py", argv, device, torch.get_num_threads())
    meta["versions"]["schnetpack"] = peers.schnetpack_version()
    meta.update(repeats=args.repeats, md_repeats=args.md_repeats, warmup=args.warmup, quick=args.quick)
    print(f"# {meta['device']}, torch {torch.__version__}, schnetpack {meta['versions']['schnetpack'] or 'n/a'}")
    report: Dict[str, Any] = dict(meta=meta)
    sections: List[str] = []
    started = time.perf_counter()

    if "peers" not in args.skip:
        report["peers"] = []
        for batch_size in args.batch_sizes:
            rows: List[Dict[str, Any]] = []
            configs: Dict[str, Any] = {}
            cases = list(TRAIN_CASES) + (["md_call"] if batch_size == args.batch_sizes[0] else [])
            for name in args.configs:
                print(f"## peers, batch {batch_size}, {name}: {CONFIGS[name].describe()}", flush=True)
                r, info = peers.run_config(
                    CONFIGS[name],
                    cases,
                    args.impls,
                    device,
                    args.warmup,
                    args.repeats,
                    batch_size,
                    args.seed,
                    args.md_repeats,
                )
                rows += r
                configs[name] = info
            part = dict(
                meta=dict(meta, configs=configs, schnetpack_note=peers.schnetpack_note(), batch_size=batch_size),
                results=rows,
                ratios=peers.ratios(rows),
            )
            report["peers"].append(part)
            sections.append(f"### Peers on {meta['device']}, training batch {batch_size}\n\n" + peers.markdown(part))

    if "md" not in args.skip:
        report["md"] = {}
        for name in args.configs:
            print(f"## MD call variants, {name}", flush=True)
            rows, skipped = accelerated.md_variants(
                CONFIGS[name],
                args.impls,
                device,
                args.modes,
                args.warmup,
                args.md_repeats,
                block=min(30, args.md_repeats),
                seed=args.seed,
            )
            report["md"][name] = dict(results=rows, skipped=skipped)
            sections.append(md_markdown(rows, skipped, name))

    if "epoch" not in args.skip:
        print(f"## QM9-sized epoch, {args.epoch_molecules:,} molecules", flush=True)
        rows, skipped = accelerated.qm9_epoch(
            CONFIGS["paper"], args.impls, device, args.epoch_molecules, args.epoch_batch_size, args.seed
        )
        report["epoch"] = dict(results=rows, skipped=skipped, molecules=args.epoch_molecules)
        sections.append(epoch_markdown(rows, skipped, args.epoch_molecules, args.epoch_batch_size))

    meta["wall_seconds"] = time.perf_counter() - started
    text = f"Command: `{meta['command']}`; {meta['device']}; date {meta['date']}.\n\n" + "\n".join(sections)
    atomic_write_text(args.out / "gpu.json", json.dumps(report, indent=1, default=str))
    atomic_write_text(args.out / "gpu.md", text)
    print("\n" + text)
    print(f"wrote {args.out / 'gpu.json'}, {args.out / 'gpu.md'} ({meta['wall_seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
