"""Time an MD step of OpenMM with our potential against ASE's VelocityVerlet with our calculator (ethanol).

    PYTHONPATH=. python benchmarks/openmm_step.py [--rounds 5] [--block 100] [--dtype float64] [--quick]

One CPU thread, one process, interleaved: each round runs ``--block`` NVE steps (0.5 fs) of every engine
in turn, each engine continuing its own trajectory from the same start (MD17 ethanol frame 0 when the
shared data excerpts are present, else ASE's ethanol; the same seeded 300 K velocities); the minimum and
the median over the rounds in milliseconds per step. Engines:

- ``ASE exact``: :class:`ase.md.verlet.VelocityVerlet` with :class:`~pyg_schnet.simulation.ase.SchNetCalculator`
  (its default ``method="exact"``, the MD evaluator);
- ``ASE autograd``: the same with ``method="autograd"`` (``SchNet.energy_and_forces``, what the OpenMM
  potential calls);
- ``OpenMM Reference exact`` / ``autograd``, ``OpenMM CPU exact``: ``MLPotential("pyg-schnet", model=...)``'s
  system (``method=`` as the calculator's) in OpenMM's :class:`openmm.VerletIntegrator` (leapfrog) on that
  platform (CPU: ``Threads=1``).

Also reported: parity at the start structure (OpenMM Reference exact against ASE exact: energy relative
difference, max force difference over max force) and energy conservation, the largest
:math:`|E_{tot}(t) - E_{tot}(0)|` per atom (meV) read after every block (outside the timing). Models
(random weights; the speed does not depend on them): :data:`harness.configs.PAPER` (all pairs) and
``COMMON`` (10 A cutoff); ``--quick``: a 16/16/2 model with a 3 A cutoff, 2 rounds of 10 steps (a smoke test).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from ase import Atoms, units

from harness.configs import COMMON, PAPER, ModelConfig
from harness.environment import command_line, machine_description, today
from harness.molecules import md17_ethanol_file
from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.md import initial_velocities

QUICK = ModelConfig("quick", 16, 16, 2, 25, 0.0, 3.0, 10.0, 3.0, 8)
DT_FS = 0.5
#: 1 eV in kJ/mol (ASE's constants)
EV_IN_KJ_MOL = 1.0 / (units.kJ / units.mol)


def ethanol() -> Tuple[Atoms, str]:
    path = md17_ethanol_file()
    if path.exists():
        data = np.load(path)
        return Atoms(numbers=data["z"], positions=data["R"][0]), "MD17 ethanol frame 0"
    from ase.build import molecule

    return molecule("CH3CH2OH"), "ASE ethanol"


def make_model(config: ModelConfig) -> SchNet:
    torch.manual_seed(0)
    model = SchNet(**config.ours_kwargs())
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model.eval()


class AseEngine:
    def __init__(self, model: SchNet, atoms: Atoms, method: str, dtype: torch.dtype) -> None:
        from ase.md.verlet import VelocityVerlet

        self.atoms = atoms.copy()
        self.atoms.set_velocities(atoms.get_velocities())
        self.atoms.calc = SchNetCalculator(model, method=method, dtype=dtype, device="cpu")
        self.dyn = VelocityVerlet(self.atoms, timestep=DT_FS * units.fs)

    def run(self, steps: int) -> None:
        self.dyn.run(steps)

    def total_energy_eV(self) -> float:
        return float(self.atoms.get_potential_energy() + self.atoms.get_kinetic_energy())

    def energy_forces(self) -> Tuple[float, np.ndarray]:
        return self.atoms.get_potential_energy(), self.atoms.get_forces()


class OpenMMEngine:
    def __init__(self, model: SchNet, atoms: Atoms, platform: str, method: str, dtype: torch.dtype) -> None:
        import openmm
        import openmm.app as app
        from openmm import unit
        from openmmml import MLPotential

        register()
        topology = app.Topology()
        residue = topology.addResidue("MOL", topology.addChain())
        for z in atoms.numbers:
            element = app.element.Element.getByAtomicNumber(int(z))
            topology.addAtom(element.symbol, element, residue)
        precision = "float64" if dtype == torch.float64 else "float32"
        system = MLPotential("pyg-schnet", model=model).createSystem(
            topology, removeCMMotion=False, precision=precision, device="cpu", method=method
        )
        self.unit = unit
        self.integrator = openmm.VerletIntegrator(DT_FS * unit.femtosecond)
        properties = {"Threads": "1"} if platform == "CPU" else {}
        self.context = openmm.Context(system, self.integrator, openmm.Platform.getPlatformByName(platform), properties)
        self.context.setPositions(atoms.positions / 10.0)  # nm
        self.context.setVelocities(atoms.get_velocities() * units.fs * 100.0)  # A/fs -> nm/ps

    def run(self, steps: int) -> None:
        self.integrator.step(steps)

    def total_energy_eV(self) -> float:
        state = self.context.getState(getEnergy=True)
        kj = self.unit.kilojoule_per_mole
        return (
            state.getPotentialEnergy().value_in_unit(kj) + state.getKineticEnergy().value_in_unit(kj)
        ) / EV_IN_KJ_MOL

    def energy_forces(self) -> Tuple[float, np.ndarray]:
        state = self.context.getState(getEnergy=True, getForces=True)
        kj = self.unit.kilojoule_per_mole
        energy = state.getPotentialEnergy().value_in_unit(kj) / EV_IN_KJ_MOL
        forces = state.getForces(asNumpy=True).value_in_unit(kj / self.unit.nanometer) / EV_IN_KJ_MOL / 10.0
        return energy, np.asarray(forces)


def register() -> None:
    """``MLPotential("pyg-schnet")`` resolves: the installed entry point, else registered here."""
    import importlib.metadata

    from openmmml import MLPotential

    if not any(ep.name == "pyg-schnet" for ep in importlib.metadata.entry_points(group="openmmml.potentials")):
        from pyg_schnet.simulation.openmm_entry import SchNetPotentialImplFactory

        MLPotential.registerImplFactory("pyg-schnet", SchNetPotentialImplFactory())


ENGINES: Dict[str, Callable[[SchNet, Atoms, torch.dtype], Any]] = {
    "ASE exact": lambda m, a, d: AseEngine(m, a, "exact", d),
    "ASE autograd": lambda m, a, d: AseEngine(m, a, "autograd", d),
    "OpenMM Reference exact": lambda m, a, d: OpenMMEngine(m, a, "Reference", "exact", d),
    "OpenMM Reference autograd": lambda m, a, d: OpenMMEngine(m, a, "Reference", "autograd", d),
    "OpenMM CPU exact": lambda m, a, d: OpenMMEngine(m, a, "CPU", "exact", d),
}


def measure(config: ModelConfig, rounds: int, block: int, dtype: torch.dtype) -> List[Dict[str, Any]]:
    atoms, _ = ethanol()
    initial_velocities(atoms, 300.0, seed=0)
    model = make_model(config)
    engines = {name: make(model, atoms, dtype) for name, make in ENGINES.items()}
    ref_e, ref_f = engines["ASE exact"].energy_forces()
    omm_e, omm_f = engines["OpenMM Reference exact"].energy_forces()
    parity_e = abs(omm_e - ref_e) / abs(ref_e)
    parity_f = float(np.abs(omm_f - ref_f).max() / np.abs(ref_f).max())
    start = {name: engine.total_energy_eV() for name, engine in engines.items()}
    deviation = dict.fromkeys(engines, 0.0)
    for engine in engines.values():  # warm-up: the first calls build caches
        engine.run(2)
    times: Dict[str, List[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            begin = time.perf_counter()
            engine.run(block)
            times[name].append((time.perf_counter() - begin) / block)
            deviation[name] = max(deviation[name], abs(engine.total_energy_eV() - start[name]))
    base = min(times["ASE exact"])
    rows = []
    for name in engines:
        rows.append(
            dict(
                config=config.name,
                engine=name,
                ms_per_step=min(times[name]) * 1e3,
                median_ms=statistics.median(times[name]) * 1e3,
                relative=min(times[name]) / base,
                nve_dev_meV_per_atom=deviation[name] * 1e3 / len(atoms),
                parity_energy_rel=parity_e,
                parity_force_rel=parity_f,
            )
        )
    return rows


def main(argv: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=100, help="steps per engine and round")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--quick", action="store_true", help="a tiny model, 2 rounds of 10 steps (smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = [QUICK] if args.quick else [PAPER, COMMON]
    rounds, block = (2, 10) if args.quick else (args.rounds, args.block)
    dtype = getattr(torch, args.dtype)
    _, source = ethanol()
    import openmm

    print(f"command: {command_line('benchmarks/openmm_step.py', argv)}")
    print(
        f"machine: {machine_description(torch.device('cpu'))}; 1 thread; torch {torch.__version__}, "
        f"OpenMM {openmm.__version__}"
    )
    print(
        f"date: {today()}; {source}, NVE {DT_FS} fs from 300 K, {args.dtype}; {rounds} interleaved rounds of "
        f"{block} steps; ms per step (min / median); NVE: max |E_tot(t) - E_tot(0)| over the {rounds * block} "
        "steps, read after each round"
    )
    print()
    print("| model | engine | ms / step (min / median) | / ASE exact | NVE max dev (meV/atom) |")
    print("|---|---|---|---|---|")
    rows: List[Dict[str, Any]] = []
    for config in configs:
        found = measure(config, rounds, block, dtype)
        rows.extend(found)
        for row in found:
            print(
                f"| {config.name} | {row['engine']} | {row['ms_per_step']:.2f} / {row['median_ms']:.2f} "
                f"| {row['relative']:.2f} | {row['nve_dev_meV_per_atom']:.1e} |"
            )
    print()
    print("parity at the start (OpenMM Reference exact against ASE exact):")
    for config in configs:
        row = next(r for r in rows if r["config"] == config.name)
        print(
            f"- {config.name} ({config.describe()}): energy {row['parity_energy_rel']:.1e} relative, "
            f"forces {row['parity_force_rel']:.1e} of the largest"
        )
    return rows


if __name__ == "__main__":
    main()
