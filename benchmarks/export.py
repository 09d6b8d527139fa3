"""Time the exported model (pyg_schnet.io.export): export, load and call, beside the eager model and the ASE calculator.

    PYTHONPATH=. python benchmarks/export.py [--reps 300] [--quick]

One thread, float64, random weights (the speed does not depend on them). Per configuration
(:data:`harness.configs.PAPER`: 64/64/3, 301 Gaussians, all pairs; ``COMMON``: 128/128/6, 50
Gaussians, cutoff 10 A) it reports

- the seconds of ``export_model`` for ``kind="pt2"`` (``torch.export``) and ``"torchscript"``
  (``torch.jit.script``), and of loading each file (``torch.export.load(...).module()``,
  ``torch.jit.load``);
- microseconds per energy-and-forces call, minimum and median over interleaved rounds (one call of
  each variant per round), for ethanol (MD17 frame 0 where the shared data excerpts exist, else ASE's)
  and a 100-atom random C/H/N/O cluster (:func:`harness.molecules.random_cluster`):
  ``model`` (``SchNet.energy_and_forces``, autograd forces), ``ase`` (``SchNetCalculator``, whose
  MD call is :class:`~pyg_schnet.models.md_evaluator.MDEvaluator`: positions in, ``get_forces`` out,
  one atom moved by 1e-9 A every other call so nothing is cached), ``pt2`` and ``torchscript`` (the
  loaded artefacts), and ``pt2-energy+autograd`` (the energy alone exported, forces by
  ``torch.autograd.grad`` through the loaded program: the alternative to the analytic forces).

Every variant's energy and forces are checked against the model's first (1e-8 relative) so a wrong
artefact is never timed. ``--quick``: two rounds, the paper configuration and ethanol only (a smoke run).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from harness.configs import COMMON, PAPER, ModelConfig
from harness.molecules import md17_ethanol_file, random_cluster
from pyg_schnet import SchNet
from pyg_schnet.io.export import SchNetPotential, export_model, load_exported

Call = Callable[[], Tuple[Tensor, Tensor]]


def ethanol() -> Tuple[Tensor, Tensor, str]:
    path = md17_ethanol_file()
    if path.exists():
        with np.load(path) as data:
            return torch.as_tensor(data["z"]), torch.as_tensor(data["R"][0], dtype=torch.float64), "ethanol (MD17)"
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=torch.float64), "ethanol (ASE)"


def cluster(num_atoms: int) -> Tuple[Tensor, Tensor, str]:
    z, pos = random_cluster(num_atoms, np.random.default_rng(0))
    return torch.as_tensor(z), torch.as_tensor(pos, dtype=torch.float64), f"{num_atoms}-atom cluster"


def make_model(config: ModelConfig) -> SchNet:
    torch.manual_seed(0)
    model = SchNet(**config.ours_kwargs()).double().eval()
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


class EnergyOnly(torch.nn.Module):
    """The exported potential's energy alone (for the autograd-outside variant)."""

    def __init__(self, potential: SchNetPotential) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, z: Tensor, pos: Tensor) -> Tensor:
        return self.potential(z, pos)[0]


def energy_only_program(model: SchNet) -> Callable[[Tensor, Tensor], Tensor]:
    """A torch.export program of an autograd-differentiable energy: the model's own modules cannot be
    exported (torch_cluster / data-dependent graphs), so this is the potential's forward, whose
    energy is differentiable too; only its cost matters here."""
    from pyg_schnet.io.export import _example

    potential = SchNetPotential.from_model(model)
    z, pos = _example(torch.float64)
    atoms = torch.export.Dim("num_atoms", min=1, max=100_000)
    program = torch.export.export(
        EnergyOnly(potential), (z, pos), dynamic_shapes={"z": {0: atoms}, "pos": {0: atoms}}, strict=False
    )
    return program.module()


def calls(model: SchNet, files: Dict[str, Path], z: Tensor, pos: Tensor) -> Dict[str, Call]:
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = SchNetCalculator(model, dtype=torch.float64)
    base = atoms.positions.copy()
    step = np.zeros((len(atoms), 3))
    step[0, 0] = 1e-9
    count = [0]

    def ase() -> Tuple[Tensor, Tensor]:
        atoms.positions = base + step * (count[0] % 2)  # new positions every call, the first as given
        count[0] += 1
        forces = atoms.get_forces()
        return torch.tensor(atoms.get_potential_energy(), dtype=torch.float64), torch.as_tensor(forces)

    pt2, _ = load_exported(files["pt2"])
    script, _ = load_exported(files["torchscript"])
    energy_only = energy_only_program(model)

    def autograd_outside() -> Tuple[Tensor, Tensor]:
        p = pos.detach().requires_grad_(True)
        energy = energy_only(z, p)
        (grad,) = torch.autograd.grad(energy, p)
        return energy.detach(), -grad

    def eager() -> Tuple[Tensor, Tensor]:
        energy, forces = model.energy_and_forces(z, pos)
        return energy[0], forces

    return {
        "model": eager,
        "ase": ase,
        "pt2": lambda: pt2(z, pos),
        "torchscript": lambda: script(z, pos),
        "pt2-energy+autograd": autograd_outside,
    }


def check(name: str, call: Call, reference: Tuple[Tensor, Tensor], unit_scale: float = 1.0) -> None:
    energy, forces = call()
    e_ref, f_ref = reference
    scale = max(float(f_ref.abs().max()), 1e-12)
    e_err = abs(float(energy) * unit_scale - float(e_ref)) / max(abs(float(e_ref)), 1e-12)
    f_err = float((forces.double() * unit_scale - f_ref).abs().max()) / scale
    if e_err > 1e-8 or f_err > 1e-8:
        raise AssertionError(f"{name}: differs from the model (energy {e_err:.2e}, forces {f_err:.2e} relative)")


def time_calls(variants: Dict[str, Call], rounds: int) -> Dict[str, Tuple[float, float]]:
    for call in variants.values():  # warm-up
        for _ in range(3):
            call()
    samples: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1e6)
    return {name: (min(s), statistics.median(s)) for name, s in samples.items()}


def run(config: ModelConfig, molecules: List[Tuple[Tensor, Tensor, str]], rounds: int, folder: Path) -> List[str]:
    model = make_model(config)
    files: Dict[str, Path] = {}
    lines = []
    for kind, suffix in (("pt2", ".pt2"), ("torchscript", ".pt")):
        result = export_model(model, folder / f"{config.name}{suffix}", kind=kind)
        start = time.perf_counter()
        load_exported(result.path)
        load_s = time.perf_counter() - start
        files[kind] = result.path
        lines.append(
            f"| {config.name} | {kind} | export {result.export_s:.2f} s | load {load_s:.3f} s | "
            f"{result.path.stat().st_size / 1e6:.2f} MB |"
        )
    from ase import units

    to_ev = units.kcal / units.mol  # the calculator answers in eV
    for z, pos, label in molecules:
        variants = calls(model, files, z, pos)
        e, f = model.energy_and_forces(z, pos)
        for name, call in variants.items():
            check(name, call, (e[0], f), 1.0 / to_ev if name == "ase" else 1.0)
        times = time_calls(variants, rounds)
        base = times["model"][1]
        for name, (low, median) in times.items():
            lines.append(f"| {config.name} | {label} | {name} | {low:.0f} | {median:.0f} | {base / median:.2f}x |")
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=300, help="timed rounds per molecule")
    parser.add_argument("--quick", action="store_true", help="two rounds, paper configuration, ethanol only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rounds = 2 if args.quick else args.reps
    configs = [PAPER] if args.quick else [PAPER, COMMON]
    molecules = [ethanol()] if args.quick else [ethanol(), cluster(100)]
    print(
        f"{datetime.date.today()} torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"1 thread, float64, {rounds} rounds"
    )
    with tempfile.TemporaryDirectory() as folder:
        for config in configs:
            print("| config | artefact | export | load | size |")
            print("| --- | --- | --- | --- | --- |")
            lines = run(config, molecules, rounds, Path(folder))
            print("\n".join(line for line in lines if " export " in line))
            print("| config | molecule | variant | min us | median us | speed-up vs model (median) |")
            print("| --- | --- | --- | --- | --- | --- |")
            print("\n".join(line for line in lines if " export " not in line))
    print("command: python benchmarks/export.py " + " ".join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
