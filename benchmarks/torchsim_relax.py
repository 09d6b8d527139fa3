"""Relax many molecules at once with TorchSim's FIRE against one after another with ASE's FIRE (issue 17).

    PYTHONPATH=. python benchmarks/torchsim_relax.py [--sizes 1 8 64 256] [--fmax 0.05] [--fit-steps 3000]
        [--max-steps 2000] [--repeats 2] [--dtype float64] [--quick]

For each size n, the same n start structures are relaxed to the same tolerance (every atom's force
below ``--fmax`` eV/Angstrom) twice, in one process on one CPU thread:

- **TorchSim**: one batched state of all n through ``ts.optimize(state, SchNetModel(model),
  optimizer=ts.optimizers.fire, convergence_fn=generate_force_convergence_fn(fmax))`` (TorchSim's
  ASE-flavoured FIRE, its defaults; converged structures leave the batch at TorchSim's default check every
  5 steps, so one may take up to 4 steps more than it needs);
- **ASE**: a loop over the n structures, each ``FIRE(atoms).run(fmax)`` (ASE's defaults, the same as
  TorchSim's ``ase_fire``) with one shared :class:`pyg_schnet.simulation.ase.SchNetCalculator` (its exact
  ``MDEvaluator`` path for molecules).

Reported: structures per second (n / wall time of the whole relaxation, structure set-up included), FIRE
steps (ASE: mean per structure; TorchSim: batched model calls), how many ended below ``fmax`` (forces
recomputed by the ASE calculator for both) and the mean absolute difference of the relaxed energies.

**Model.** A small SchNet with a cosine cutoff (32 features, 2 interactions, 25 Gaussians, cutoff 4 A) fitted
with ``--fit-steps`` Adam steps to the energies and forces (kcal/mol) of the first 1,000 real MD17 ethanol frames of
``../shared/data`` ("trained-ish": its force error is printed); the start structures are the frames after
those 1,000 (thermal MD17 geometries, up to 500). Without the shared data, or with ``--fit-steps 0``, the
weights stay random and the starts are ASE's ethanol rattled by 0.05 A (the report says which).
``--quick`` is a smoke test: sizes 1 and 2, no fit, ``--fmax 0.01``, at most 60 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch_sim as ts
from ase import Atoms

from harness.environment import command_line, machine_description, today
from harness.molecules import md17_ethanol_file
from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import SchNetCalculator
from pyg_schnet.simulation.torchsim import SchNetModel

SIZES = (1, 8, 64, 256)
#: frames of the MD17 excerpt the model is fitted to; the start structures come after them
FIT_FRAMES = 1000


def small_model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=32,
        num_filters=32,
        num_interactions=2,
        num_gaussians=25,
        rbf_stop=4.0,
        cutoff=4.0,
        output_hidden=16,
    )
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


def fit(model: SchNet, z: np.ndarray, R: np.ndarray, E: np.ndarray, F: np.ndarray, steps: int) -> str:
    """``steps`` of Adam (seeded) on 0.01 MSE(E) + MSE(F) (kcal/mol, kcal/mol/A) in batches of 32 frames; the
    force MAE on the fitted frames and on the frames after them, as a sentence."""
    n = len(z)
    model.set_standardization(mean=float(E.mean()) / n, std=float(E.std()) / n**0.5)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    zt = torch.as_tensor(z).repeat(32)
    batch = torch.arange(32).repeat_interleave(n)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, FIT_FRAMES, (32,), generator=gen)
        pos = torch.as_tensor(R[idx], dtype=torch.float32).reshape(-1, 3)
        energy, forces = model.energy_and_forces(zt, pos, batch)
        loss = (
            0.01 * (energy - torch.as_tensor(E[idx], dtype=torch.float32)).square().mean()
            + (forces - torch.as_tensor(F[idx], dtype=torch.float32).reshape(-1, 3)).square().mean()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()

    def force_mae(frames: np.ndarray) -> float:
        errors = []
        for k in frames:
            _, forces = model.energy_and_forces(torch.as_tensor(z), torch.as_tensor(R[k], dtype=torch.float32))
            errors.append(float((forces - torch.as_tensor(F[k], dtype=torch.float32)).abs().mean()))
        return float(np.mean(errors))

    fitted = force_mae(np.arange(0, FIT_FRAMES, 20))
    held_out = force_mae(np.arange(FIT_FRAMES, len(R), 10))
    return (
        f"fitted with {steps} Adam steps of 32 frames ({seconds:.0f} s) to the first {FIT_FRAMES} real MD17 "
        "ethanol frames: "
        f"force MAE {fitted:.2f} kcal/mol/A on them, {held_out:.2f} on the frames after them (data: mean |F| 19.6)"
    )


def structures(count: int, fit_steps: int, seed: int = 0) -> Tuple[SchNet, List[Atoms], str]:
    """The model, ``count`` start structures, and a sentence saying what they are."""
    model = small_model(seed)
    path = md17_ethanol_file()
    if path.exists() and fit_steps > 0:
        data = np.load(path)
        z, R, E, F = data["z"], data["R"], data["E"][:, 0], data["F"]
        if count > len(R) - FIT_FRAMES:
            raise SystemExit(f"at most {len(R) - FIT_FRAMES} structures: the MD17 excerpt has {len(R)} frames")
        how = fit(model, z, R, E, F, fit_steps)
        starts = [Atoms(numbers=z, positions=R[FIT_FRAMES + k]) for k in range(count)]
        return model, starts, f"model {how}; starts: MD17 ethanol frames {FIT_FRAMES}..{FIT_FRAMES + count - 1}"
    from ase.build import molecule

    model.set_standardization(mean=0.0, std=2.5)
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(count):
        atoms = molecule("CH3CH2OH")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        starts.append(atoms)
    return model, starts, "model: random weights (not fitted); starts: ASE's ethanol rattled by 0.05 A"


class CountingModel(SchNetModel):
    """:class:`SchNetModel` that counts its (batched) calls."""

    calls = 0

    def forward(self, state, **kwargs):  # type: ignore[override]
        self.calls += 1
        return super().forward(state, **kwargs)


def relax_torchsim(
    model: SchNet, starts: List[Atoms], fmax: float, max_steps: int, dtype: torch.dtype
) -> Tuple[float, List[Atoms], int]:
    """Wall seconds, relaxed structures and batched model calls of TorchSim's FIRE on all of ``starts``."""
    wrapped = CountingModel(model, device="cpu", dtype=dtype)
    convergence = ts.runners.generate_force_convergence_fn(fmax, include_cell_forces=False)
    start = time.perf_counter()
    state = ts.io.atoms_to_state(starts, wrapped.device, wrapped.dtype)
    final = ts.optimize(state, wrapped, optimizer=ts.optimizers.fire, convergence_fn=convergence, max_steps=max_steps)
    relaxed = final.to_atoms()
    return time.perf_counter() - start, relaxed, wrapped.calls


def relax_ase(
    model: SchNet, starts: List[Atoms], fmax: float, max_steps: int, dtype: torch.dtype
) -> Tuple[float, List[Atoms], int]:
    """Wall seconds, relaxed structures and total FIRE steps of ASE's FIRE, one structure after another."""
    from ase.optimize import FIRE

    calc = SchNetCalculator(model, device="cpu", dtype=dtype)
    steps = 0
    relaxed = []
    start = time.perf_counter()
    for atoms in starts:
        atoms = atoms.copy()
        atoms.calc = calc
        optimizer = FIRE(atoms, logfile=None)
        optimizer.run(fmax=fmax, steps=max_steps)
        steps += optimizer.nsteps
        relaxed.append(atoms)
    return time.perf_counter() - start, relaxed, steps


def check(model: SchNet, relaxed: List[Atoms]) -> Tuple[np.ndarray, np.ndarray]:
    """Largest atomic force (eV/A) and energy (eV) of each structure, from a float64 ASE calculator."""
    calc = SchNetCalculator(model, device="cpu")
    fmax, energy = [], []
    for atoms in relaxed:
        atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions)
        atoms.calc = calc
        fmax.append(float(np.linalg.norm(atoms.get_forces(), axis=1).max()))
        energy.append(atoms.get_potential_energy())
    return np.array(fmax), np.array(energy)


def main(argv: Optional[List[str]] = None) -> Dict[int, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--fmax", type=float, default=0.05, help="force tolerance, eV/Angstrom (both optimizers)")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--fit-steps", type=int, default=3000, help="Adam steps fitting the model (0: random)")
    parser.add_argument("--repeats", type=int, default=2, help="relaxations of each kind per size; the fastest counts")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--quick", action="store_true", help="smoke test: sizes 1 2, random model, fmax 0.01, 60 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.fit_steps, args.max_steps, args.fmax, args.repeats = [1, 2], 0, 60, 0.01, 1
    if any(n < 1 for n in args.sizes) or args.fmax <= 0 or min(args.max_steps, args.repeats) < 1 or args.fit_steps < 0:
        raise SystemExit("--sizes must be >= 1, --fmax > 0, --max-steps and --repeats >= 1, --fit-steps >= 0")
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    model, starts, what = structures(max(args.sizes), args.fit_steps)
    from importlib.metadata import version

    print(f"command: {command_line('benchmarks/torchsim_relax.py', argv)}")
    print(
        f"machine: {machine_description(torch.device('cpu'))}; 1 torch thread; torch {torch.__version__}, "
        f"torch-sim-atomistic {version('torch-sim-atomistic')}, ase {version('ase')}"
    )
    print(
        f"date: {today()}; {args.dtype}; fmax {args.fmax} eV/A; at most {args.max_steps} steps; "
        f"fastest of {args.repeats} interleaved runs of each"
    )
    print(what)
    print()
    with warnings.catch_warnings():  # warm-up of both paths (TorchSim warns that it stopped at max_steps)
        warnings.simplefilter("ignore")
        relax_torchsim(model, starts[:1], args.fmax, 5, dtype)
        relax_ase(model, starts[:1], args.fmax, 5, dtype)
    print(
        "| molecules | TorchSim FIRE, batched (structures/s) | ASE FIRE loop (structures/s) | TorchSim / ASE "
        "| TorchSim model calls | ASE steps per structure | converged (TorchSim / ASE) | mean abs dE (eV) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results: Dict[int, Dict[str, float]] = {}
    for n in args.sizes:
        batch = starts[:n]
        ts_seconds = ase_seconds = float("inf")
        for _ in range(args.repeats):
            seconds, ts_relaxed, calls = relax_torchsim(model, batch, args.fmax, args.max_steps, dtype)
            ts_seconds = min(ts_seconds, seconds)
            seconds, ase_relaxed, ase_steps = relax_ase(model, batch, args.fmax, args.max_steps, dtype)
            ase_seconds = min(ase_seconds, seconds)
        ts_fmax, ts_energy = check(model, ts_relaxed)
        ase_fmax, ase_energy = check(model, ase_relaxed)
        row = {
            "torchsim_per_s": n / ts_seconds,
            "ase_per_s": n / ase_seconds,
            "calls": calls,
            "ase_steps": ase_steps / n,
            "ts_converged": int((ts_fmax < args.fmax).sum()),
            "ase_converged": int((ase_fmax < args.fmax).sum()),
            "mean_abs_de": float(np.abs(ts_energy - ase_energy).mean()),
        }
        results[n] = row
        print(
            f"| {n} | {row['torchsim_per_s']:.2f} | {row['ase_per_s']:.2f} "
            f"| {row['torchsim_per_s'] / row['ase_per_s']:.2f} "
            f"| {calls} | {row['ase_steps']:.0f} | {row['ts_converged']} / {row['ase_converged']} of {n} "
            f"| {row['mean_abs_de']:.1e} |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    sys.exit(main() and None)
