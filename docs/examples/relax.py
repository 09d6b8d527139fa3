"""Geometry optimisation with a trained SchNet: ASE's BFGS through :class:`pyg_schnet.simulation.ase.SchNetCalculator`.

    python docs/examples/relax.py runs/eth/model.pt start.xyz --fmax 0.01 --out relaxed.xyz

prints the energy and the largest force before and after, and writes the relaxed structure.
"""

from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np
from ase import Atoms
from ase.optimize import BFGS

from pyg_schnet.simulation.ase import SchNetCalculator


def relax(model, atoms: Atoms, fmax: float = 0.01, steps: int = 500) -> Tuple[Atoms, bool, int]:
    """Relaxes a copy of ``atoms`` until every force is below ``fmax`` eV/A; returns it, whether it
    converged, and the number of BFGS steps."""
    atoms = atoms.copy()
    atoms.calc = SchNetCalculator(model)
    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return atoms, converged, opt.nsteps


def main() -> None:
    from ase.io import read, write

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model.pt")
    parser.add_argument("start", help="any structure file ASE reads")
    parser.add_argument("--fmax", type=float, default=0.01, help="eV/A")
    parser.add_argument("--out", default="relaxed.xyz")
    args = parser.parse_args()
    start = read(args.start)
    start.calc = SchNetCalculator(args.model)
    e0, f0 = start.get_potential_energy(), np.linalg.norm(start.get_forces(), axis=1).max()
    relaxed, converged, steps = relax(args.model, start, args.fmax)
    e1, f1 = relaxed.get_potential_energy(), np.linalg.norm(relaxed.get_forces(), axis=1).max()
    print(
        f"start: E = {e0:.4f} eV, max |F| = {f0:.3f} eV/A; after {steps} BFGS steps "
        f"({'converged' if converged else 'NOT converged'}): E = {e1:.4f} eV ({e1 - e0:+.4f}), "
        f"max |F| = {f1:.4f} eV/A"
    )
    write(args.out, relaxed)


if __name__ == "__main__":
    main()
