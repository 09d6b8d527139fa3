"""Make the embedded demo data set: a GFN2-xTB Langevin trajectory of ethanol.

The demo set lets the README's training command run offline in minutes. It is
labelled with GFN2-xTB (semi-empirical tight binding, through ``tblite``), *not*
with DFT, so its numbers are not comparable to MD17's PBE+vdW-TS labels.

Procedure
---------
1. Build ethanol with ``ase.build.molecule('CH3CH2OH')`` and reorder its atoms
   to MD17's ethanol order ``C C O H H H H H H``: the CH2 carbon bonded to O,
   the methyl carbon, O, the two CH2 hydrogens, the three methyl hydrogens and
   the hydroxyl hydrogen.
2. Check the calculator's forces against a central finite difference of its
   energy on the starting geometry (a few components); stop if they disagree.
3. Draw Maxwell-Boltzmann velocities at ``--temperature`` from
   ``numpy.random.default_rng(--seed)`` (the same generator then drives the
   thermostat's noise), remove the centre-of-mass momentum and integrate
   Langevin dynamics (friction ``--friction`` per fs, time step
   ``--timestep-fs``) with the centre of mass held fixed
   (``ase.constraints.FixCom``).
4. Discard ``--equilibration-steps`` steps, then keep one frame every
   ``--stride`` steps until ``--frames`` frames are stored.

Output layout (that of the published MD17 ``.npz`` files)
---------------------------------------------------------
``R`` (M, 9, 3) float64, Angstrom; ``z`` (9,) int64; ``E`` (M, 1) float64,
kcal/mol (total GFN2-xTB energy); ``F`` (M, 9, 3) float64, kcal/mol/Angstrom
(``F = -dE/dR``, the calculator's forces before any constraint is applied);
scalar strings ``name``, ``theory``, ``type``, ``e_unit``, ``r_unit``; and
scalar metadata ``temperature_K``, ``timestep_fs``, ``friction_per_fs``,
``stride``, ``equilibration_steps``, ``seed``, ``command``.

Units: ASE's energies are in eV and lengths in Angstrom, so energies and forces
are multiplied by ``1 / (ase.units.kcal / ase.units.mol)`` (kcal/mol per eV).

``tblite`` is an optional dependency used only here::

    pip install "pyg-schnet[demo-data]"    # or: pip install tblite

Run (single-threaded, as the shipped file was made)::

    OMP_NUM_THREADS=1 python benchmarks/make_demo_data.py \\
        --out pyg_schnet/experiments/demo/ethanol_xtb_500K.npz
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

# The xTB library is OpenMP-parallel; one thread is fastest for 9 atoms and is
# how the shipped file was made. Must be set before tblite is loaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.constraints import FixCom  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import Stationary  # noqa: E402

try:  # ASE >= 3.29 name; MaxwellBoltzmannDistribution wraps it and is deprecated there.
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _mbd

    def _thermalize(atoms: Atoms, temperature_K: float, *, rng: np.random.Generator) -> None:
        _mbd(atoms, temperature_K=temperature_K, rng=rng)


#: kcal/mol per eV (about 23.0605).
EV_TO_KCAL_PER_MOL: float = 1.0 / (units.kcal / units.mol)

#: Index into ``ase.build.molecule('CH3CH2OH')`` for each MD17 ethanol atom.
#: ASE order: C(methyl), C(H2), O, H(O), H(CH2) x2, H(methyl) x3.
#: MD17 order: C(H2), C(methyl), O, H(CH2) x2, H(methyl) x3, H(O).
ASE_TO_MD17_ETHANOL: tuple[int, ...] = (1, 0, 2, 4, 5, 6, 7, 8, 3)

#: Heavy atom each MD17 ethanol hydrogen (indices 3..8) is bonded to.
MD17_ETHANOL_H_PARENT: dict[int, int] = {3: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: 2}

TBLITE_INSTALL_HINT = (
    "tblite is needed to make the demo data set; install it with "
    '`pip install "pyg-schnet[demo-data]"` or `pip install tblite`.'
)


def load_tblite() -> tuple[type, str]:
    """Import tblite's ASE calculator lazily.

    Returns:
        The ``TBLite`` calculator class and the installed tblite version.

    Raises:
        ImportError: tblite is not installed, with the command that installs it.
    """
    try:
        from tblite.ase import TBLite
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"{TBLITE_INSTALL_HINT} (import failed: {err})") from err
    try:
        from importlib.metadata import version

        tblite_version = version("tblite")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        tblite_version = "unknown"
    return TBLite, tblite_version


def md17_ethanol() -> Atoms:
    """Ethanol from ASE's G2 set, reordered to MD17's atom order.

    Returns:
        9 atoms with atomic numbers ``[6, 6, 8, 1, 1, 1, 1, 1, 1]``.

    Raises:
        RuntimeError: the reordered molecule does not have MD17's bonding
            pattern (a change in ASE's built-in geometry).
    """
    atoms = molecule("CH3CH2OH")[list(ASE_TO_MD17_ETHANOL)]
    expected = [6, 6, 8, 1, 1, 1, 1, 1, 1]
    if atoms.numbers.tolist() != expected:
        raise RuntimeError(f"reordered ethanol has atomic numbers {atoms.numbers.tolist()}, expected MD17's {expected}")
    dist = atoms.get_all_distances()
    for h, parent in MD17_ETHANOL_H_PARENT.items():
        nearest = int(np.argmin(np.where(np.arange(9) == h, np.inf, dist[h])))
        if nearest != parent:
            raise RuntimeError(
                f"atom {h} (H) is bonded to atom {nearest}, expected atom {parent} in MD17's ethanol order"
            )
    if dist[0, 2] > dist[1, 2]:
        raise RuntimeError("atom 0 must be the carbon bonded to O (MD17 order)")
    return atoms


def check_forces(atoms: Atoms, step: float = 1e-3, atol: float = 1e-3) -> float:
    """Compare the calculator's forces with ``-dE/dx`` by central differences.

    Args:
        atoms: Atoms with a calculator attached; positions are restored.
        step: Displacement in Angstrom.
        atol: Largest accepted difference in eV/Angstrom.

    Returns:
        The largest absolute difference found (eV/Angstrom).

    Raises:
        RuntimeError: a component differs by more than ``atol``.
    """
    pos0 = atoms.get_positions()
    forces = atoms.get_forces(apply_constraint=False)
    worst = 0.0
    for i, k in [(0, 0), (1, 1), (2, 2), (3, 0), (5, 1), (8, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            pos = pos0.copy()
            pos[i, k] += sign * step
            atoms.set_positions(pos, apply_constraint=False)
            energies.append(atoms.get_potential_energy())
        fd = -(energies[0] - energies[1]) / (2.0 * step)
        diff = abs(fd - forces[i, k])
        worst = max(worst, diff)
        if diff > atol:
            raise RuntimeError(
                f"force on atom {i}, component {'xyz'[k]}: calculator {forces[i, k]:.6f} "
                f"eV/A, finite difference {fd:.6f} eV/A (|diff| {diff:.2e} > {atol:.0e})"
            )
    atoms.set_positions(pos0, apply_constraint=False)
    return worst


def save_npz_atomic(path: Path, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` to ``path`` as a compressed npz, atomically.

    The data go to a temporary file in the same folder which then replaces
    ``path``, so an interrupted run never leaves a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        # mkstemp creates the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Make the GFN2-xTB ethanol demo data set (MD17 npz layout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("pyg_schnet/experiments/demo/ethanol_xtb_500K.npz"), help="output .npz file"
    )
    parser.add_argument("--frames", type=int, default=1000, help="number of frames to store")
    parser.add_argument("--temperature", type=float, default=500.0, help="thermostat temperature in K")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="MD time step in fs")
    parser.add_argument("--stride", type=int, default=200, help="MD steps between stored frames")
    parser.add_argument(
        "--equilibration-steps", type=int, default=2000, help="MD steps discarded before the first stored frame"
    )
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs")
    parser.add_argument("--seed", type=int, default=0, help="seed for velocities and thermostat")
    args = parser.parse_args(argv)
    for name in ("frames", "stride"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.equilibration_steps < 0:
        parser.error(f"--equilibration-steps must be >= 0, got {args.equilibration_steps}")
    for name in ("temperature", "timestep_fs", "friction"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.out.suffix != ".npz":
        parser.error(f"--out must end in .npz, got {args.out}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        TBLite, tblite_version = load_tblite()
    except ImportError as err:
        raise SystemExit(f"error: {err}") from None
    command = shlex.join(
        [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", "python", *sys.argv]
        if argv is None
        else ["python", "benchmarks/make_demo_data.py", *argv]
    )

    atoms = md17_ethanol()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)

    t0 = time.perf_counter()
    e0 = atoms.get_potential_energy()
    atoms.get_forces()
    print(f"tblite {tblite_version}, GFN2-xTB, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(
        f"start geometry: E = {e0 / units.Hartree:.6f} Ha = {e0 * EV_TO_KCAL_PER_MOL:.3f} kcal/mol "
        f"(first call {time.perf_counter() - t0:.3f} s)"
    )
    worst = check_forces(atoms)
    print(f"forces vs. finite-difference gradient: max |diff| = {worst:.2e} eV/A")

    rng = np.random.default_rng(args.seed)
    _thermalize(atoms, args.temperature, rng=rng)  # Maxwell-Boltzmann momenta
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        timestep=args.timestep_fs * units.fs,
        temperature_K=args.temperature,
        friction=args.friction / units.fs,
        fixcm=False,
        rng=rng,
    )

    t_md = time.perf_counter()
    if args.equilibration_steps:
        print(
            f"equilibrating {args.equilibration_steps} steps "
            f"({args.equilibration_steps * args.timestep_fs / 1000:.2f} ps) ...",
            flush=True,
        )
        dyn.run(args.equilibration_steps)
        print(f"  done in {time.perf_counter() - t_md:.1f} s, T = {atoms.get_temperature():.0f} K", flush=True)

    n = args.frames
    R = np.empty((n, len(atoms), 3))
    E = np.empty((n, 1))
    F = np.empty((n, len(atoms), 3))
    temps = np.empty(n)
    report_every = max(1, n // 20)
    t_prod = time.perf_counter()
    for m in range(n):
        dyn.run(args.stride)
        # The calculator's cached results belong to the current positions.
        R[m] = atoms.get_positions()
        E[m, 0] = atoms.get_potential_energy() * EV_TO_KCAL_PER_MOL
        F[m] = atoms.get_forces(apply_constraint=False) * EV_TO_KCAL_PER_MOL
        temps[m] = atoms.get_temperature()
        if (m + 1) % report_every == 0 or m + 1 == n:
            elapsed = time.perf_counter() - t_prod
            print(
                f"  frame {m + 1:5d}/{n}  E = {E[m, 0]:.2f} kcal/mol  "
                f"<T> = {temps[: m + 1].mean():.0f} K  {elapsed:.1f} s",
                flush=True,
            )

    if not (np.isfinite(R).all() and np.isfinite(E).all() and np.isfinite(F).all()):
        raise RuntimeError("non-finite positions, energies or forces in the trajectory; nothing written")

    arrays: dict[str, Any] = {
        "R": R,
        "z": atoms.numbers.astype(np.int64),
        "E": E,
        "F": F,
        "name": np.array("ethanol"),
        "theory": np.array(f"GFN2-xTB (tblite {tblite_version})"),
        "type": np.array("d"),
        "e_unit": np.array("kcal/mol"),
        "r_unit": np.array("Ang"),
        "temperature_K": np.array(float(args.temperature)),
        "timestep_fs": np.array(float(args.timestep_fs)),
        "friction_per_fs": np.array(float(args.friction)),
        "stride": np.array(int(args.stride)),
        "equilibration_steps": np.array(int(args.equilibration_steps)),
        "seed": np.array(int(args.seed)),
        "command": np.array(command),
    }
    save_npz_atomic(args.out, arrays)

    total = time.perf_counter() - t_md
    steps = args.equilibration_steps + n * args.stride
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {n} frames, "
        f"{steps} MD steps ({steps * args.timestep_fs / 1000:.1f} ps) in {total:.1f} s"
    )
    print(
        f"E mean {E.mean():.3f} std {E.std():.3f} kcal/mol; "
        f"mean |F| component {np.abs(F).mean():.3f} kcal/mol/A; <T> {temps.mean():.0f} K"
    )


if __name__ == "__main__":
    main()
