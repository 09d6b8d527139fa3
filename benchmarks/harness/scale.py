"""How pyg-schnet's cost grows with the number of atoms at a fixed cutoff.

One system per step: a random C/H/N/O cluster of ``N`` atoms at a liquid-like number density
(:data:`~harness.molecules.CLUSTER_DENSITY` atoms / Angstrom^3, no two atoms closer than 1 A,
non-periodic), with the configuration :data:`~harness.configs.SCALE` (cutoff 5 A). For each
``N`` it measures, float32, the median time and the peak memory of one step of each kind:

- ``inference``: energy, eval mode, ``torch.no_grad()``;
- ``md_call``: energy and forces, eval mode (the call an MD step makes);
- ``train_forces``: energy + force training step (double backward), Adam step.

With a fixed cutoff the number of pairs grows linearly with ``N`` (up to the surface of the cluster:
an atom near the surface has fewer neighbours, so pairs per atom grow with ``N`` towards the bulk
value), and so should time and memory. :func:`slopes` fits the log-log slope of each against ``N``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from harness import environment
from harness.adapters import OursSparse
from harness.configs import ModelConfig
from harness.molecules import CLUSTER_DENSITY, make_batch, random_cluster
from harness.timing import Estimator, loglog_slope, measure
from pyg_schnet.graph import build_pairs
from pyg_schnet.io.files import atomic_write_text
from pyg_schnet.io.plotting import finish_figure, pyplot

MODES = ("inference", "md_call", "train_forces")
TITLES = {
    "inference": "inference (energy, no_grad)",
    "md_call": "energy + forces, eval",
    "train_forces": "E+F training step",
}


def _step(runner: OursSparse, mode: str, data: Any):
    if mode == "inference":
        return lambda: runner.inference_step(data)
    if mode == "md_call":
        return lambda: runner.md_call(data.z, data.pos)
    return lambda: runner.train_step(data, with_forces=True)


def run_scale(
    config: ModelConfig,
    sizes: Sequence[int],
    device: torch.device,
    warmup: int,
    repeats: int,
    max_memory_gib: float = 8.0,
    max_step_seconds: float = 60.0,
    modes: Sequence[str] = MODES,
    seed: int = 0,
) -> List[Dict[str, Any]]:
    """One row per (size, mode): ``atoms``, ``pairs`` (unordered, within the cutoff), times and
    ``peak_memory_mib``, or ``skipped`` with the reason (estimated from smaller sizes, by pairs)."""
    runner = OursSparse(config, device)
    estimator = Estimator(max_memory_gib * 1024, max_step_seconds)
    rows: List[Dict[str, Any]] = []
    for n in sorted(sizes):
        rng = np.random.default_rng(seed)
        data = make_batch([random_cluster(int(n), rng)], rng).to(device)
        pairs = int(build_pairs(data.pos, data.batch, config.cutoff).size(1))
        for mode in modes:
            row: Dict[str, Any] = dict(mode=mode, atoms=int(n), pairs=pairs, pairs_per_atom=2 * pairs / n)
            reason = estimator.why_skip("ours", mode, pairs)
            if reason:
                row["skipped"] = reason
                print(f"  N={n:6d} {mode:13s} skipped: {reason}", flush=True)
            else:
                m = measure({"ours": _step(runner, mode, data)}, device, warmup, repeats)["ours"]
                m.pop("items_per_s")
                row.update(m)
                estimator.record("ours", mode, pairs, m["median_s"], m["peak_memory_mib"])
                mem = "-" if m["peak_memory_mib"] is None else f"{m['peak_memory_mib']:.0f} MiB"
                print(f"  N={n:6d} {mode:13s} {m['median_s'] * 1e3:10.1f} ms/step, peak {mem}", flush=True)
            rows.append(row)
        del data
    return rows


def slopes(rows: List[Dict[str, Any]], min_atoms: int = 0) -> Dict[str, Dict[str, Optional[float]]]:
    """Log-log slopes of time, peak memory and pairs against atoms, per mode, over sizes >= ``min_atoms``
    (``None`` with fewer than two measured sizes)."""
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        measured = [r for r in rows if r["mode"] == mode and "median_s" in r and r["atoms"] >= min_atoms]
        fit: Dict[str, Optional[float]] = {}
        for key, values in (
            ("time", [r["median_s"] for r in measured]),
            ("memory", [r["peak_memory_mib"] for r in measured]),
            ("pairs", [float(r["pairs"]) for r in measured]),
        ):
            ok = [(r["atoms"], v) for r, v in zip(measured, values) if v is not None and v > 0]
            fit[key] = loglog_slope([a for a, _ in ok], [v for _, v in ok]) if len({a for a, _ in ok}) >= 2 else None
        out[mode] = fit
    return out


def _slope(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


def markdown(report: Dict[str, Any]) -> str:
    meta = report["meta"]
    rows = report["results"]
    sizes = sorted({r["atoms"] for r in rows})
    by_key = {(r["atoms"], r["mode"]): r for r in rows}
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['device']}, {meta['threads']} torch thread(s), float32; date {meta['date']}; "
        f"torch {meta['versions']['torch']}; pyg-schnet backend: torch-scatter "
        f"{'yes' if meta['backend']['torch_scatter'] else 'no'}, torch-cluster "
        f"{'yes' if meta['backend']['torch_cluster'] else 'no'}; " + environment.allocator_note(meta) + ".  ",
        f"Model: {meta['config']['description']}. Systems: one random C/H/N/O cluster per step, "
        f"{CLUSTER_DENSITY} atoms/A^3, no two atoms closer than 1 A, not periodic. Median of "
        f"{meta['repeats']} steps after {meta['warmup']} warm-up step(s); peak memory of one extra step before them.",
        "",
        "| atoms | pairs (within 5 A) | neighbours / atom | "
        + " | ".join(f"{TITLES[m]} ms / MiB" for m in meta["modes"])
        + " |",
        "|---|---|---|" + "---|" * len(meta["modes"]),
    ]
    for n in sizes:
        first = next(r for r in rows if r["atoms"] == n)
        cells = [f"{n:,}", f"{first['pairs']:,}", f"{first['pairs_per_atom']:.1f}"]
        for mode in meta["modes"]:
            r = by_key.get((n, mode))
            if r is None or "median_s" not in r:
                cells.append("skipped" if r is not None else "-")
            else:
                mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:,.0f}"
                cells.append(f"{r['median_s'] * 1e3:,.1f} / {mem}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Log-log slopes against the number of atoms (1 = linear):")
    lines.append("")
    lines.append("| mode | sizes | time | peak memory | pairs |")
    lines.append("|---|---|---|---|---|")
    for label, fits in (("all", report["slopes"]), (f">= {report['slope_min_atoms']:,}", report["slopes_large"])):
        for mode, fit in fits.items():
            slopes = " | ".join(_slope(fit[key]) for key in ("time", "memory", "pairs"))
            lines.append(f"| {TITLES[mode]} | {label} | {slopes} |")
    skipped = [f"- N={r['atoms']:,}, {r['mode']}: {r['skipped']}" for r in rows if r.get("skipped")]
    if skipped:
        lines += ["", "Skipped:", ""] + skipped
    lines.append("")
    return "\n".join(lines)


def plot(report: Dict[str, Any], path: Path) -> Optional[str]:
    try:
        plt = pyplot()
    except ImportError as exc:  # pragma: no cover
        return f"no plot: {exc}"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, mode in enumerate(report["meta"]["modes"]):
        measured = [r for r in report["results"] if r["mode"] == mode and "median_s" in r]
        if not measured:
            continue
        x = [r["atoms"] for r in measured]
        axes[0].loglog(x, [r["median_s"] * 1e3 for r in measured], "o-", color=f"C{k}", label=TITLES[mode])
        mem = [(r["atoms"], r["peak_memory_mib"]) for r in measured if r["peak_memory_mib"]]
        if mem:
            axes[1].loglog([a for a, _ in mem], [m for _, m in mem], "o-", color=f"C{k}", label=TITLES[mode])
    for ax in axes:  # a slope-1 guide through the first point of each curve
        for k, line in enumerate(list(ax.get_lines())):
            x, y = line.get_xdata(), line.get_ydata()
            ax.loglog(x, [y[0] * v / x[0] for v in x], ":", color="0.5", lw=1, label="slope 1" if k == 0 else None)
    for ax, label in zip(axes, ("ms per step", "peak memory of a step, MiB")):
        ax.set_xlabel("atoms")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    meta = report["meta"]
    finish_figure(
        plt, fig, path, f"pyg-schnet at a 5 A cutoff, {meta['device']}, {meta['threads']} thread(s) ({meta['date']})"
    )
    return None


def write_outputs(report: Dict[str, Any], out: Path, plot_path: Path) -> str:
    atomic_write_text(out / "scale.json", json.dumps(report, indent=1))
    table = markdown(report)
    atomic_write_text(out / "scale.md", table)
    problem = plot(report, plot_path)
    print("\n" + table)
    print(f"wrote {out / 'scale.json'}, {out / 'scale.md'}" + (f"; {problem}" if problem else f", {plot_path}"))
    return table
