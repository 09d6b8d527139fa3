"""Time the MD call (one ethanol, energy + forces, eval) of our SchNet, MDEvaluator and PyG's SchNet.

    PYTHONPATH=. python benchmarks/md_call.py [--reps 2000] [--dtype float32] [--errors]

One thread, all calls in one process, interleaved (one call of each variant per round), the minimum and
the median over the rounds in microseconds per call. Variants, at the paper configuration (64/64/3,
301 Gaussians on 0-30 A, gamma 10, all pairs; PyG: cutoff 30 A) and the common one (128/128/6,
50 Gaussians on 0-10 A, gamma 10, cutoff 10 A):

- ``model``: ``SchNet.energy_and_forces`` (autograd forces; input checks, graph, fast filters);
- ``exact`` / ``tabulated``: :class:`pyg_schnet.models.md_evaluator.MDEvaluator` in either mode;
- ``pyg``: ``torch_geometric.nn.models.SchNet`` through the harness's adapter
  (:class:`harness.adapters.PyGSchNet`: same sizes, our Gaussian centres and gamma, pairs
  from ``pyg_schnet.graph.build_graph``), its bare call with forces by ``torch.autograd.grad``.

Configurations are :data:`harness.configs.PAPER` and ``COMMON``; the full peer comparison
(SchNetPack too, our MD call through the ASE calculator) is ``benchmarks/peers.py``.

``--errors`` adds the tabulation error against grid spacing (:func:`spacing_table`).

Ethanol is MD17 frame 0 when the shared data excerpts are present, else ASE's ethanol. Weights are random (the
speed does not depend on them).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from harness.adapters import PyGSchNet
from harness.configs import COMMON, PAPER, ModelConfig
from harness.molecules import md17_ethanol_file
from pyg_schnet import SchNet
from pyg_schnet.models.md_evaluator import MDEvaluator

CONFIGS = {"paper": PAPER, "common": COMMON}


def ethanol(dtype: torch.dtype):
    path = md17_ethanol_file()
    if path.exists():
        data = np.load(path)
        return torch.as_tensor(data["z"]), torch.as_tensor(data["R"][0], dtype=dtype), "MD17 ethanol frame 0"
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=dtype), "ASE ethanol"


def variants(
    config: ModelConfig, dtype: torch.dtype, z: torch.Tensor, pos: torch.Tensor
) -> Dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    model = SchNet(**config.ours_kwargs()).to(dtype).eval()
    exact, tab = MDEvaluator(model, z), MDEvaluator(model, z, mode="tabulated")
    reference = model.energy_and_forces(z, pos)
    for name, evaluator in (("exact", exact), ("tabulated", tab)):  # time only what agrees with the model
        energy, forces = evaluator(pos)
        scale = float(reference[1].abs().max())
        if not (
            torch.allclose(energy, reference[0], rtol=1e-5, atol=0)
            and float((forces - reference[1]).abs().max()) <= 1e-4 * scale
        ):
            raise AssertionError(f"MDEvaluator {name} disagrees with model.energy_and_forces")
    pyg = PyGSchNet(config, torch.device("cpu"))
    pyg.model.to(dtype)
    return {
        "model": lambda: model.energy_and_forces(z, pos),
        "exact": lambda: exact(pos),
        "tabulated": lambda: tab(pos),
        "pyg": lambda: pyg.md_call(z, pos),
    }


def measure(fns: Dict[str, Callable[[], object]], reps: int) -> Dict[str, List[float]]:
    for fn in fns.values():  # warm-up
        for _ in range(20):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def spacing_table(frames_step: int = 5) -> None:
    """Tabulated vs exact (float64) on MD17 ethanol frames for several grid spacings: the stated bound
    per filter entry and the measured energy / force errors of a random model whose output scale is
    set so its forces have the data's RMS size (kcal/mol/A), standardised with the data's mean."""
    data = np.load(md17_ethanol_file())
    z, frames = torch.as_tensor(data["z"]), torch.as_tensor(data["R"][::frames_step])
    rms_data = float(np.sqrt((data["F"] ** 2).mean()))
    mean = float(data["E"].mean()) / z.numel()
    print(f"tabulated vs exact, float64, {len(frames)} MD17 ethanol frames (every {frames_step}th of 1,500)")
    print()
    print(
        "| config | spacing (A) | table (MiB, float32) | bound w | bound dw/dd | max energy error (kcal/mol) "
        "| max force error (kcal/mol/A) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        model = SchNet(**cfg.ours_kwargs()).double().eval()
        model.set_standardization(mean, 1.0)
        exact = MDEvaluator(model, z)
        rms_model = float(torch.stack([exact(p)[1] for p in frames[:20]]).square().mean().sqrt())
        model.set_standardization(mean, rms_data / rms_model)
        exact.refresh()
        reference = [exact(p) for p in frames]
        for spacing in (0.04, 0.02, 0.01, 0.005):
            tab = MDEvaluator(model, z, mode="tabulated", spacing=spacing)
            out = [tab(p) for p in frames]
            e_err = max(float((a[0] - b[0]).abs()) for a, b in zip(out, reference))
            f_err = max(float((a[1] - b[1]).abs().max()) for a, b in zip(out, reference))
            bound_w, bound_dw = tab.tabulation_error_bound()
            mib = tab._table.numel() * 4 / 2**20
            print(
                f"| {name} (output scale {rms_data / rms_model:.0f}) | {spacing} | {mib:.1f} | {bound_w:.1e} "
                f"| {bound_dw:.1e} | {e_err:.1e} | {f_err:.1e} |"
            )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--errors", action="store_true", help="also the tabulation errors vs grid spacing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    z, pos, source = ethanol(dtype)
    print(f"command: python benchmarks/md_call.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} thread, no GPU used; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )
    print(
        f"date: {datetime.date.today().isoformat()}; molecule: {source}; dtype {args.dtype}; "
        f"{args.reps} interleaved rounds; microseconds per call (min / median)"
    )
    print()
    print(
        "| config | model.energy_and_forces | MDEvaluator exact | MDEvaluator tabulated | PyG SchNet + autograd "
        "| PyG / exact | PyG / tabulated |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, cfg in CONFIGS.items():
        times = measure(variants(cfg, dtype, z, pos), args.reps)
        best = {k: min(v) * 1e6 for k, v in times.items()}
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        cells = [f"{best[k]:.0f} / {med[k]:.0f}" for k in ("model", "exact", "tabulated", "pyg")]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {best['pyg'] / best['exact']:.2f} | {best['pyg'] / best['tabulated']:.2f} |"
        )
    if args.errors:
        if not md17_ethanol_file().exists():
            print(f"\n(--errors needs {md17_ethanol_file()}; skipped)")
            return
        print()
        spacing_table()


if __name__ == "__main__":
    main()
