"""Sparse vs dense batching of pyg-schnet beside PyG's and SchNetPack's SchNet: the measurement grid
and its report (tables, plot, merging of runs). ``benchmarks/batching.py`` is the command line.

For each case (a kind of molecule) and batch size this measures, in one process, the median of
``repeats`` timed steps after ``warmup`` untimed ones, interleaved over the columns
(:func:`harness.timing.measure`), for three kinds of step:

- ``train_energy``: one training step on an energy loss (forward, backward, Adam step);
- ``train_forces``: one training step on an energy + force loss (forces by autograd with
  ``create_graph=True``, so the backward pass is a double backward), Adam step;
- ``inference``: energies only, eval mode, ``torch.no_grad()``;

plus the process's CPU time of the same steps and the peak memory of one extra step. Throughput is
molecules per second. Columns (:mod:`harness.adapters`) all use
:data:`harness.configs.BATCHING`: ``ours_sparse``, ``ours_dense`` (the same model on padded
batches, ``to_dense`` timed in the step), ``pyg``, ``schnetpack`` (skipped with the reason when it
cannot be imported).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch_geometric.data import Batch

from harness.adapters import Runner
from harness.molecules import Case, make_batch
from harness.timing import Estimator, measure, over_time
from pyg_schnet.io.files import atomic_write_text
from pyg_schnet.io.plotting import finish_figure, pyplot

MODES = ("train_energy", "train_forces", "inference")
IMPLS = ("ours_sparse", "ours_dense", "pyg", "schnetpack")
LARGE_SIZES = {"n50": 50, "n100": 100, "n200": 200, "n500": 500}
ALL_CASES = ("ethanol", "iso17", "qm9", *LARGE_SIZES)


def work_units(impl: str, sizes: Sequence[int]) -> float:
    """Pairs an implementation computes for a batch (padding included for the dense path)."""
    if impl == "ours_dense":
        n = max(sizes)
        return len(sizes) * n * (n - 1) / 2
    return float(sum(n * (n - 1) / 2 for n in sizes))


def prior_skip(impl: str, units: float, max_memory_gib: float) -> Optional[str]:
    """A first guard before anything is measured: a force training step in float32 with 301
    Gaussians keeps about 30 kB per atom pair alive in our sparse path (1.2 GiB for 32 molecules of
    50 atoms) and about 40 kB in PyG's and SchNetPack's; these priors round that up."""
    per_pair = 50e3 if impl in ("pyg", "schnetpack") else 40e3
    mib = units * per_pair / 2**20
    if mib > max_memory_gib * 1024:
        return f"estimated peak memory {mib / 1024:.1f} GiB > limit {max_memory_gib:.1f} GiB"
    return None


def _step(runner: Runner, mode: str, data: Batch) -> None:
    if mode == "inference":
        runner.inference_step(data)
    else:
        runner.train_step(data, with_forces=(mode == "train_forces"))


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
    """Molecules per second against atoms per molecule, one panel per kind of step; ``None`` when
    drawn, else the reason it could not be (matplotlib missing)."""
    try:
        plt = pyplot()
        import matplotlib.ticker
    except ImportError as exc:  # pragma: no cover
        return f"no plot: {exc}"
    labels = {
        "ours_sparse": "pyg-schnet sparse",
        "ours_dense": "pyg-schnet dense",
        "pyg": "PyG SchNet",
        "schnetpack": "SchNetPack",
    }
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
                ax.plot(
                    [p[0] for p in line], [p[1] for p in line], styles[impl], color=colors[impl], label=labels[impl]
                )
            if "qm9" in chosen and ("qm9", chosen["qm9"], impl) in rows:  # a spread of sizes: not on the line
                r = rows["qm9", chosen["qm9"], impl]
                ax.plot(
                    [r["mean_atoms"]], [r["molecules_per_s"]], styles[impl][0], mfc="none", color=colors[impl], ms=9
                )
        for case, bs in chosen.items():
            r = rows.get((case, bs, "ours_sparse")) or next(v for (c, b, i), v in rows.items() if c == case and b == bs)
            if case == "qm9" or bs != batch_size:
                label = ("QM9 sizes" if case == "qm9" else "") + (f" B={bs}" if bs != batch_size else "")
                ax.annotate(
                    label.strip(),
                    (r["mean_atoms"], r["molecules_per_s"]),
                    textcoords="offset points",
                    xytext=(6, 6),
                    fontsize=7,
                )
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
    finish_figure(
        plt, fig, path, f"SchNet throughput, {meta['device']}, {meta['threads']} thread(s), float32 ({meta['date']})"
    )
    return None


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
    return sorted(
        merged.values(),
        key=lambda r: (order.get(r["case"], 99), r["batch_size"], IMPLS.index(r["impl"]), MODES.index(r["mode"])),
    )


def write_outputs(
    report: Dict[str, Any], out: Path, plot_path: Path, plot_batch_size: int, write_json: bool = True
) -> None:
    """``batching.json`` (unless ``write_json`` is false), ``batching.md`` and the plot, each atomically."""
    if write_json:
        atomic_write_text(out / "batching.json", json.dumps(report, indent=1))
    table = markdown(report)
    atomic_write_text(out / "batching.md", table)
    problem = plot(report, plot_path, plot_batch_size)
    print("\n" + table)
    written = [str(out / "batching.json")] if write_json else []
    written.append(str(out / "batching.md"))
    print("wrote " + ", ".join(written) + (f"; {problem}" if problem else f", {plot_path}"))


def run_grid(
    runners: Dict[str, Runner],
    unavailable: Dict[str, str],
    cases: Dict[str, Case],
    case_names: Sequence[str],
    impls: Sequence[str],
    modes: Sequence[str],
    batch_sizes: Sequence[int],
    large_batch_sizes: Sequence[int],
    device: torch.device,
    warmup: int,
    repeats: int,
    max_memory_gib: float,
    max_step_seconds: float,
    max_minutes: Optional[float] = None,
    seed: int = 0,
) -> List[Dict[str, Any]]:
    """Measure every (case, batch size, mode) for every column; one row per column, measured or
    with the reason it was ``skipped``. Steps estimated (:class:`~harness.timing.Estimator`)
    to need more than ``max_memory_gib`` or ``max_step_seconds`` are skipped, and so is everything left
    once the run has taken ``max_minutes``. Cases of 100 atoms and more also get ``large_batch_sizes``."""
    estimator = Estimator(max_memory_gib * 1024, max_step_seconds)
    results: List[Dict[str, Any]] = []
    started = time.perf_counter()
    for case_name in case_names:
        case = cases[case_name]
        print(f"## {case_name}: {case.description}", flush=True)
        sizes_here = set(batch_sizes)
        if LARGE_SIZES.get(case_name, 0) >= 100:
            sizes_here |= set(large_batch_sizes)
        for bs in sorted(sizes_here):
            rng = np.random.default_rng(seed)
            data = make_batch(case.make(bs, rng), rng).to(device)
            sizes = torch.bincount(data.batch).tolist()
            atoms = f"{min(sizes)}-{max(sizes)}" if min(sizes) != max(sizes) else str(sizes[0])
            for mode in modes:
                rows: Dict[str, Dict[str, Any]] = {}
                todo: Dict[str, Runner] = {}
                for impl in impls:
                    units = work_units(impl, sizes)
                    rows[impl] = dict(
                        case=case_name,
                        batch_size=bs,
                        impl=impl,
                        mode=mode,
                        atoms=atoms,
                        mean_atoms=float(np.mean(sizes)),
                        max_atoms=max(sizes),
                        pairs=units,
                    )
                    reason = (
                        unavailable.get(impl)
                        or (None if estimator.measured(impl, mode) else prior_skip(impl, units, max_memory_gib))
                        or estimator.why_skip(impl, mode, units)
                        or over_time(started, max_minutes)
                    )
                    if reason:
                        rows[impl]["skipped"] = reason
                        if impl not in unavailable:
                            print(f"  B={bs:4d} {impl:12s} {mode:13s} skipped: {reason}", flush=True)
                    else:
                        todo[impl] = runners[impl]
                steps = {impl: (lambda r=runner, m=mode, d=data: _step(r, m, d)) for impl, runner in todo.items()}
                try:
                    measured = measure(steps, device, warmup, repeats, items=data.num_graphs)
                except RuntimeError as exc:  # out of memory on a GPU, for instance
                    reason = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                    print(f"  B={bs:4d} {mode:13s} {reason}", flush=True)
                    measured = {}
                    for impl in todo:
                        rows[impl]["skipped"] = reason
                for impl, m in measured.items():
                    row = rows[impl]
                    row.update(m)
                    row["molecules_per_s"] = row.pop("items_per_s")
                    estimator.record(impl, mode, row["pairs"], row["median_s"], row["peak_memory_mib"])
                    mem = "-" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f} MiB"
                    print(
                        f"  B={bs:4d} {impl:12s} {mode:13s} {row['molecules_per_s']:10.1f} mol/s "
                        f"({row['median_s'] * 1e3:8.1f} ms/step, peak {mem})",
                        flush=True,
                    )
                results.extend(rows.values())
            del data
    return results
