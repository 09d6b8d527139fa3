"""The MD step through ASE calculators: pyg-schnet's ``SchNetCalculator`` against SchNetPack's
``SpkCalculator``, same model configuration, same real ethanol frames, interleaved steps.

Run with the SchNetPack side environment of docs/benchmarks.md (``PYTHONPATH=.`` and its python);
prints a markdown table with the command, the machine and the date. Each step moves the atoms to the
next MD17 ethanol frame and asks for energy and forces (what one MD step asks of a calculator).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict

import ase
import torch

from harness.adapters import OursSparse, SchNetPack
from harness.configs import COMMON, PAPER
from harness.environment import command_line, machine_description, today, versions
from harness.peers import md_frames
from harness.schnetpack_import import import_schnetpack
from harness.timing import measure
from pyg_schnet.simulation.ase import SchNetCalculator


def calculator_steps(config, dtype: torch.dtype, folder: Path) -> Dict[str, object]:
    """One MD-step function per calculator, all on the same frames."""
    spk, _ = import_schnetpack()
    from schnetpack.interfaces import SpkCalculator

    class TrustedSpkCalculator(SpkCalculator):
        """SpkCalculator whose model file (written just above by this script) is read with full
        unpickling: SchNetPack 2.1.1 pickles whole modules, which torch >= 2.6 refuses by default."""

        def _load_model(self, model_file: str):
            return torch.load(model_file, map_location="cpu", weights_only=False).to(torch.float64).eval()

    cpu = torch.device("cpu")
    ours = OursSparse(config, cpu).model.eval()
    peer = SchNetPack(config, cpu)
    model_file = folder / f"spk_{config.name}.pt"
    torch.save(peer.force_model.eval(), model_file)
    calcs = {
        "pyg-schnet (exact)": SchNetCalculator(ours, dtype=dtype, method="exact"),
        "pyg-schnet (tabulated)": SchNetCalculator(ours, dtype=dtype, method="tabulated"),
        "SchNetPack SpkCalculator": TrustedSpkCalculator(
            str(model_file),
            neighbor_list=spk.transform.ASENeighborList(cutoff=config.peer_cutoff),
            energy_unit="kcal/mol",
            position_unit="Angstrom",
            dtype=dtype,
        ),
    }
    steps = {}
    for name, calc in calcs.items():
        cycle = md_frames()
        atoms = ase.Atoms(numbers=cycle.z, positions=cycle.frames[0])
        atoms.calc = calc

        def step(atoms: ase.Atoms = atoms, cycle=cycle) -> None:
            atoms.positions = cycle.next()
            atoms.get_potential_energy()
            atoms.get_forces()

        steps[name] = step
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    spk, note = import_schnetpack()
    print(f"Command: `{command_line('benchmarks/ase_calculators.py', sys.argv[1:])}`  ")
    print(
        f"Machine: {machine_description(torch.device('cpu'))}, 1 torch thread, {args.dtype}; date {today()}; "
        f"versions {versions({'schnetpack': spk.__version__})}" + (f"; {note}" if note else "")
    )
    print("\n| config | calculator | median ms / MD step | vs SpkCalculator |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for config in (PAPER, COMMON):
            result = measure(
                calculator_steps(config, dtype, Path(tmp)),
                torch.device("cpu"),
                20,
                max(1, args.repeats // 30),
                memory=False,
                block=30,
            )
            peer = result["SchNetPack SpkCalculator"]["median_s"]
            for name, r in result.items():
                print(f"| {config.name} | {name} | {r['median_s'] * 1e3:.3f} | {peer / r['median_s']:.2f} |")


if __name__ == "__main__":
    main()
