"""Wall time of MD through SchNetCalculator on one and on two CPU threads, with the cores idle and with
one core kept busy by another process (what a laptop or a shared node looks like).

    python benchmarks/calculator_threads.py --steps 100

Prints a markdown table (seconds per 100 velocity-Verlet steps of ethanol, paper model, random
weights, float64, exact MD evaluator); docs/simulation.md ("Threads") quotes it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time

import torch
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import SchNetCalculator


def _spin(stop: "mp.synchronize.Event") -> None:  # a busy core
    while not stop.is_set():
        pass


def md_seconds(threads: int, steps: int) -> float:
    torch.manual_seed(0)
    model = SchNet.from_paper()
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(model, threads=threads)
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(5)  # warm-up
    start = time.perf_counter()
    dyn.run(steps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    rows = []
    for busy in (False, True):
        stop = mp.Event()
        spinner = mp.Process(target=_spin, args=(stop,)) if busy else None
        if spinner is not None:
            spinner.start()
        try:
            times = {threads: md_seconds(threads, args.steps) for threads in (1, 2)}
        finally:
            stop.set()
            if spinner is not None:
                spinner.join()
        rows.append((busy, times))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}; {args.steps} steps of ethanol (paper model, float64, exact evaluator)"
    )
    print("| cores | 1 thread (s) | 2 threads (s) | 2 threads / 1 thread |")
    print("|---|---|---|---|")
    for busy, times in rows:
        label = "one core busy with another process" if busy else "idle"
        print(f"| {label} | {times[1]:.2f} | {times[2]:.2f} | {times[2] / times[1]:.1f} |")


if __name__ == "__main__":
    main()
