"""pyg-schnet against PyG's and SchNetPack's SchNet, side by side, at the paper's and the common
configuration (:data:`~harness.configs.PAPER`, :data:`~harness.configs.COMMON`).

Cases (:data:`CASES`), each timed for the three implementations in one process with interleaved steps
(:func:`harness.timing.measure`), float32:

- ``ethanol_forces``: MD17 ethanol (real frames), energy + force training step (double backward), batch 32;
- ``ethanol_energy``: the same molecules, energy-only training step;
- ``iso17_forces``: ISO17 (19 atoms, real rows), energy + force training step, batch 32;
- ``qm9_energy``: QM9-sized molecules (3-29 atoms), energy-only training step, batch 32;
- ``md_call``: one ethanol molecule, energy + forces, eval mode: the call an MD step makes. Ours goes
  through the ASE calculator (:class:`pyg_schnet.simulation.ase.SchNetCalculator`, float32, every overhead
  included: ASE's state check, tensor conversion, input checks, graph building, unit conversion);
  the peers get their bare model call on tensors prepared beforehand. Each call moves to the next
  real frame, as an MD step does. When ``pyg_schnet.simulation.ase`` cannot be imported, our bare model call
  is timed instead and the row says so. The MD call is timed in alternating blocks of
  :data:`MD_BLOCK` consecutive calls per implementation (an MD run calls one calculator back to back);
  one call at a time, interleaved with the peers' larger working sets, ours measured up to 2x slower
  from cache effects (0.64-0.74 ms against 0.35 ms, paper configuration, 2026-11-22).

Ratios are the peer's median time per step divided by ours (above 1: ours is faster).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from harness import environment
from harness.adapters import Runner, make_runners
from harness.configs import ModelConfig
from harness.molecules import Case, build_cases, ethanol_frames, make_batch, make_synthetic_ethanol, md17_ethanol_file
from harness.schnetpack_import import import_schnetpack, schnetpack_note
from harness.timing import measure
from pyg_schnet.io.files import atomic_write_text
from pyg_schnet.io.plotting import finish_figure, pyplot

IMPLS = ("ours_sparse", "pyg", "schnetpack")
LABELS = {"ours_sparse": "pyg-schnet", "pyg": "PyG", "schnetpack": "SchNetPack"}


@dataclass(frozen=True)
class PeerCase:
    name: str
    molecules: str  # a case of :func:`harness.molecules.build_cases`
    mode: str  # 'train_forces', 'train_energy' or 'md_call'
    batch_size: int
    title: str
    #: ``SchNetCalculator(method=...)`` of our MD call (``'exact'`` or ``'tabulated'``)
    method: str = "exact"
    #: consecutive calls per implementation and round (``None``: :data:`MD_BLOCK` for the MD call, else 1)
    block: Optional[int] = None


CASES: Tuple[PeerCase, ...] = (
    PeerCase("ethanol_forces", "ethanol", "train_forces", 32, "ethanol, E+F training"),
    PeerCase("ethanol_energy", "ethanol", "train_energy", 32, "ethanol, energy training"),
    PeerCase("iso17_forces", "iso17", "train_forces", 32, "ISO17 (19 atoms), E+F training"),
    PeerCase("qm9_energy", "qm9", "train_energy", 32, "QM9-sized (3-29 atoms), energy training"),
    PeerCase("md_call", "ethanol", "md_call", 1, "one ethanol, E+F eval (MD call)"),
    PeerCase(
        "md_call_tabulated",
        "ethanol",
        "md_call",
        1,
        "one ethanol, E+F eval (MD call; ours: tabulated filters)",
        method="tabulated",
    ),
    PeerCase(
        "md_call_interleaved",
        "ethanol",
        "md_call",
        1,
        "one ethanol, E+F eval (MD call, one call at a time interleaved with the peers')",
        block=1,
    ),
    PeerCase(
        "md_call_tabulated_interleaved",
        "ethanol",
        "md_call",
        1,
        "one ethanol, E+F eval (MD call, one call at a time; ours: tabulated filters)",
        method="tabulated",
        block=1,
    ),
)
CASE_NAMES = tuple(c.name for c in CASES)
#: Consecutive calls per implementation and round when the MD call is timed (see the module docstring).
MD_BLOCK = 30

GAUSSIAN_NOTE = (
    "PyG's and SchNetPack's Gaussian widths are set to our gamma (PyG: `distance_expansion.coeff = "
    "-gamma`; SchNetPack: `widths = sqrt(0.5 / gamma)`); their defaults tie the width to the spacing of "
    "the centres. All three get the same pairs (`pyg_schnet.graph.build_graph`, built inside every step)."
)


def calculator_class() -> Tuple[Optional[type], Optional[str]]:
    """``(SchNetCalculator, None)``, or ``(None, reason)`` when ``pyg_schnet.simulation.ase`` is not available."""
    try:
        from pyg_schnet.simulation.ase import SchNetCalculator  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return SchNetCalculator, None


class FrameCycle:
    """Real ethanol frames, one after the other (an MD trajectory's worth of changing positions)."""

    def __init__(self, z: np.ndarray, frames: np.ndarray) -> None:
        self.z = z
        self.frames = frames
        self._next = itertools.cycle(range(len(frames)))

    def next(self) -> np.ndarray:
        return self.frames[next(self._next)]


def md_frames(count: int = 64, seed: int = 0) -> FrameCycle:
    """``count`` ethanol frames: real MD17 frames where the excerpt exists, else noisy ASE geometries."""
    rng = np.random.default_rng(seed)
    if md17_ethanol_file().exists():
        z, frames = ethanol_frames()
        return FrameCycle(z, frames[rng.permutation(len(frames))[:count]])
    mols = make_synthetic_ethanol(count, rng)
    return FrameCycle(mols[0][0], np.stack([p for _, p in mols]))


def md_steps(
    runners: Dict[str, Runner], device: torch.device, seed: int = 0, method: str = "exact"
) -> Tuple[Dict[str, Callable[[], Any]], Dict[str, str]]:
    """One MD call per implementation (see the module docstring) and a note per implementation on
    how it was called; ours through ``SchNetCalculator(method=method)``."""
    import ase

    steps: Dict[str, Callable[[], Any]] = {}
    notes: Dict[str, str] = {}
    for name, runner in runners.items():
        cycle = md_frames(seed=seed)
        if name == "ours_sparse":
            calc_cls, why = calculator_class()
            if calc_cls is not None:
                runner.model.eval()
                calc = calc_cls(runner.model, device=device, dtype=torch.float32, method=method)
                atoms = ase.Atoms(numbers=cycle.z, positions=cycle.frames[0])
                atoms.calc = calc

                def step(atoms: ase.Atoms = atoms, cycle: FrameCycle = cycle) -> Any:
                    atoms.positions = cycle.next()
                    return atoms.get_potential_energy(), atoms.get_forces()

                steps[name] = step
                notes[name] = (
                    f"through pyg_schnet.simulation.ase.SchNetCalculator (float32, method={method!r}), "
                    "ASE Atoms in, numpy out"
                )
                continue
            notes[name] = f"bare model call: pyg_schnet.simulation.ase.SchNetCalculator not available ({why})"
        else:
            notes[name] = "bare model call on prepared float32 tensors"
        z = torch.as_tensor(cycle.z, dtype=torch.long, device=device)
        tensors = [torch.as_tensor(f, dtype=torch.float32, device=device) for f in cycle.frames]
        order = itertools.cycle(range(len(tensors)))

        def bare(
            runner: Runner = runner,
            z: torch.Tensor = z,
            tensors: List[torch.Tensor] = tensors,
            order: "itertools.cycle[int]" = order,
        ) -> Any:
            return runner.md_call(z, tensors[next(order)])

        steps[name] = bare
    return steps, notes


def _train_step(runner: Runner, data: Any, with_forces: bool) -> Callable[[], None]:
    return lambda: runner.train_step(data, with_forces)


def training_case(
    case: PeerCase,
    runners: Dict[str, Runner],
    molecule_cases: Dict[str, Case],
    batch_size: Optional[int],
    seed: int,
    device: torch.device,
) -> Tuple[Any, Dict[str, Callable[[], None]]]:
    """The batch a training case times (``batch_size`` molecules, default the case's, drawn with
    ``seed``) and one training step on it per runner."""
    rng = np.random.default_rng(seed)
    data = make_batch(molecule_cases[case.molecules].make(batch_size or case.batch_size, rng), rng).to(device)
    with_forces = case.mode == "train_forces"
    return data, {name: _train_step(r, data, with_forces) for name, r in runners.items()}


def run_config(
    config: ModelConfig,
    case_names: Sequence[str],
    impls: Sequence[str],
    device: torch.device,
    warmup: int,
    repeats: int,
    batch_size: Optional[int] = None,
    seed: int = 0,
    md_repeats: Optional[int] = None,
) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Measure ``case_names`` at ``config``; returns the rows and facts about the runners. The MD
    call, a few milliseconds, gets ``md_repeats`` rounds (default ``10 * repeats``): on a shared
    machine the scheduler's time slices are of its order."""
    runners, unavailable = make_runners(impls, config, device)
    molecule_cases: Dict[str, Case] = build_cases({})
    info: Dict[str, Any] = dict(
        description=config.describe(),
        hyper_parameters=config.ours_kwargs(),
        parameters={k: r.num_parameters() for k, r in runners.items()},
        unavailable=unavailable,
    )
    rows: List[Dict[str, Any]] = []
    for case in (c for c in CASES if c.name in case_names):
        if case.mode == "md_call":
            steps, notes = md_steps(runners, device, seed, case.method)
            info["md_call" if case.method == "exact" else f"md_call_{case.method}"] = notes
            count, atoms, source = 1, "9", molecule_cases["ethanol"].description
        else:
            bs = batch_size or case.batch_size
            data, steps = training_case(case, runners, molecule_cases, bs, seed, device)
            sizes = torch.bincount(data.batch).tolist()
            atoms = f"{min(sizes)}-{max(sizes)}" if min(sizes) != max(sizes) else str(sizes[0])
            notes = {}
            count, source = bs, molecule_cases[case.molecules].description
        block = case.block or (MD_BLOCK if case.mode == "md_call" else 1)
        calls = (md_repeats or 10 * repeats) if case.mode == "md_call" else repeats
        rounds = max(1, calls // block)
        measured = measure(steps, device, warmup, rounds, items=count, block=block)
        for impl in impls:
            row: Dict[str, Any] = dict(
                config=config.name,
                case=case.name,
                title=case.title,
                mode=case.mode,
                impl=impl,
                batch_size=count,
                atoms=atoms,
                data=source,
                repeats=rounds * block,
                block=block,
            )
            if impl in measured:
                row.update(measured[impl])
            else:
                row["skipped"] = unavailable.get(impl, "not run")
            if case.mode == "md_call" and impl in notes:
                row["how"] = notes[impl]
            rows.append(row)
        line = ", ".join(f"{LABELS[i]} {measured[i]['median_s'] * 1e3:.2f} ms" for i in impls if i in measured)
        print(f"  [{config.name}] {case.name:15s} {line}", flush=True)
    return rows, info


def ratios(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (config, case): peer median time / our median time, wall clock and CPU."""
    by_key: Dict[Tuple[str, str], Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        if "median_s" in r:
            by_key.setdefault((r["config"], r["case"]), {})[r["impl"]] = r
    out = []
    for (config, case), t in by_key.items():
        q: Dict[str, Any] = dict(config=config, case=case)
        ours = t.get("ours_sparse")
        for peer in ("pyg", "schnetpack"):
            if ours is not None and peer in t:
                q[f"ours_vs_{peer}"] = t[peer]["median_s"] / ours["median_s"]
                if ours["median_cpu_s"] > 0:
                    q[f"ours_vs_{peer}_cpu"] = t[peer]["median_cpu_s"] / ours["median_cpu_s"]
        out.append(q)
    return out


def _ms(row: Optional[Dict[str, Any]]) -> str:
    if row is None or "median_s" not in row:
        return "n/a"
    ms = row["median_s"] * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: Dict[str, Any]) -> str:
    """The side-by-side table: milliseconds per step and the ratios, with command, machine and date."""
    meta = report["meta"]
    by_key = {(r["config"], r["case"], r["impl"]): r for r in report["results"]}
    ratio = {(q["config"], q["case"]): q for q in report["ratios"]}
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['device']}, {meta['threads']} torch thread(s), float32; date {meta['date']}; "
        f"torch {meta['versions']['torch']}, torch-geometric {meta['versions']['torch_geometric']}, "
        f"schnetpack {meta['versions'].get('schnetpack') or 'n/a'}; pyg-schnet backend: "
        f"torch-scatter {'yes' if meta['backend']['torch_scatter'] else 'no (plain PyTorch)'}, "
        f"torch-cluster {'yes' if meta['backend']['torch_cluster'] else 'no (plain PyTorch)'}; "
        + environment.allocator_note(meta)
        + ".  ",
        f"Median of {meta['repeats']} interleaved steps ({meta.get('md_repeats') or 10 * meta['repeats']} for the MD "
        f"call, in alternating blocks of {MD_BLOCK} consecutive calls per implementation, or one call at a time "
        f"where the row says so) after {meta['warmup']} "
        "warm-up steps; ratio = peer time / our time (above 1: ours is faster), "
        "from wall-clock time and, in brackets, from the process's CPU time per step (less disturbed when "
        "other jobs share the cores).",
        "",
        "| config | case | atoms | B | ours ms | PyG ms | SchNetPack ms | ours / PyG (CPU) | ours / SchNetPack (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in meta["configs"]:
        for case in CASES:
            rows = [by_key.get((name, case.name, i)) for i in IMPLS]
            if all(r is None for r in rows):
                continue
            any_row = next(r for r in rows if r is not None)
            q = ratio.get((name, case.name), {})
            title = case.title
            ours = rows[0]
            if case.mode == "md_call" and ours is not None and "bare model call" in ours.get("how", ""):
                title += " **(ours: bare model call, calculator not available)**"
            lines.append(
                f"| {name} | {title} | {any_row['atoms']} | {any_row['batch_size']} | "
                + " | ".join(_ms(r) for r in rows)
                + f" | {_ratio(q.get('ours_vs_pyg'))} ({_ratio(q.get('ours_vs_pyg_cpu'))})"
                + f" | {_ratio(q.get('ours_vs_schnetpack'))} ({_ratio(q.get('ours_vs_schnetpack_cpu'))}) |"
            )
    lines.append("")
    lines.append("Configurations:")
    lines.append("")
    for name, cfg in meta["configs"].items():
        params = ", ".join(f"{LABELS.get(k, k)} {v:,}" for k, v in cfg["parameters"].items())
        lines.append(f"- **{name}**: {cfg['description']}; parameters: {params}.")
    lines.append("")
    lines.append(GAUSSIAN_NOTE)
    md = next((cfg.get("md_call") for cfg in meta["configs"].values() if cfg.get("md_call")), None)
    if md:
        lines.append("")
        lines.append("MD call: " + "; ".join(f"{LABELS.get(k, k)}: {v}" for k, v in md.items()) + ".")
    for name, cfg in meta["configs"].items():
        for impl, reason in cfg["unavailable"].items():
            lines.append("")
            lines.append(f"{LABELS.get(impl, impl)} not measured at {name}: {reason}.")
            break
    if meta.get("schnetpack_note"):
        lines.append("")
        lines.append(f"Note: {meta['schnetpack_note']}.")
    lines.append("")
    return "\n".join(lines)


def plot(report: Dict[str, Any], path: Path, goals: Optional[Dict[str, float]] = None) -> Optional[str]:
    """Bars of ``ours / PyG`` and ``ours / SchNetPack`` per case, one panel per configuration."""
    try:
        plt = pyplot()
    except ImportError as exc:  # pragma: no cover
        return f"no plot: {exc}"
    configs = list(report["meta"]["configs"])
    ratio = {(q["config"], q["case"]): q for q in report["ratios"]}
    fig, axes = plt.subplots(1, len(configs), figsize=(6.5 * len(configs), 4.2), squeeze=False)
    for ax, name in zip(axes[0], configs):
        cases = [c for c in CASES if (name, c.name) in ratio]
        x = np.arange(len(cases))
        for k, (peer, color) in enumerate((("pyg", "C2"), ("schnetpack", "C3"))):
            values = [ratio[name, c.name].get(f"ours_vs_{peer}", np.nan) for c in cases]
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color=color, label=f"ours / {LABELS[peer]}")
        ax.axhline(1.0, color="k", lw=0.8)
        if goals and name in goals:
            ax.axhline(goals[name], color="C0", ls="--", lw=1, label=f"goal {goals[name]:g}x")
        ax.set_xticks(x)
        ax.set_xticklabels([c.title.replace(" (", "\n(", 1).replace(", ", ",\n", 1) for c in cases], fontsize=7)
        ax.set_ylabel("speed-up (peer time / our time)")
        ax.set_title(f"{name}: {report['meta']['configs'][name]['description']}", fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    meta = report["meta"]
    finish_figure(
        plt,
        fig,
        path,
        f"pyg-schnet vs PyG and SchNetPack SchNet, {meta['device']}, "
        f"{meta['threads']} thread(s), float32 ({meta['date']})",
    )
    return None


def write_outputs(report: Dict[str, Any], out: Path, plot_path: Path, goals: Optional[Dict[str, float]] = None) -> str:
    """``peers.json``, ``peers.md`` and the plot, each written atomically; returns the markdown."""
    atomic_write_text(out / "peers.json", json.dumps(report, indent=1))
    table = markdown(report)
    atomic_write_text(out / "peers.md", table)
    problem = plot(report, plot_path, goals)
    print("\n" + table)
    print(f"wrote {out / 'peers.json'}, {out / 'peers.md'}" + (f"; {problem}" if problem else f", {plot_path}"))
    return table


def schnetpack_version() -> Optional[str]:
    try:
        return import_schnetpack()[0].__version__
    except ImportError:
        return None


__all__ = [
    "CASES",
    "CASE_NAMES",
    "IMPLS",
    "PeerCase",
    "run_config",
    "ratios",
    "markdown",
    "plot",
    "write_outputs",
    "md_steps",
    "training_case",
    "calculator_class",
    "schnetpack_version",
    "schnetpack_note",
    "GAUSSIAN_NOTE",
]
