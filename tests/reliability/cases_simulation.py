"""Audit cases of the simulation area: the ASE calculator and ``pyg-schnet md``."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import PropertyNotImplementedError

from .registry import case


def _tiny_model_file(tmp):
    import torch

    from pyg_schnet import SchNet
    from pyg_schnet.io.model_file import save_model

    torch.manual_seed(0)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, rbf_stop=3.0, cutoff=3.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return save_model(model, tmp / "model.pt")


def _ethanol_start(tmp):
    from ase.build import molecule
    from ase.io import write

    atoms = molecule("CH3CH2OH")
    write(tmp / "start.xyz", atoms)
    return tmp / "start.xyz", atoms


@case(
    "simulation",
    "calculator with an energy unit ASE does not know ('kcal/mole')",
    ValueError,
    r"unknown unit 'kcal/mole': 'mole' is not a symbol of ase\.units",
)
def _(tmp):
    from pyg_schnet.simulation.ase import SchNetCalculator

    SchNetCalculator(_tiny_model_file(tmp), energy_unit="kcal/mole")


@case(
    "simulation",
    "stress asked of a non-periodic molecule",
    PropertyNotImplementedError,
    r"stress is defined for periodic systems only: these atoms have pbc = \[False, False, False\]",
)
def _(tmp):
    from ase.build import molecule

    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = molecule("H2O")
    atoms.calc = SchNetCalculator(_tiny_model_file(tmp))
    atoms.get_stress()


@case(
    "simulation",
    "MD start structure file that does not exist",
    FileNotFoundError,
    r"<tmp>/missing\.xyz: no such start structure",
)
def _(tmp):
    from pyg_schnet.experiments.md_command import main

    main(
        [
            str(_tiny_model_file(tmp)),
            str(tmp / "missing.xyz"),
            "--steps",
            "1",
            "--out",
            str(tmp / "out"),
            "--no-progress",
        ]
    )


@case(
    "simulation",
    "MD reference npz without positions (no field R)",
    ValueError,
    r"<tmp>/ref\.npz: no field 'R' .* fields: \['E', 'z'\]",
)
def _(tmp):
    from pyg_schnet.experiments.md_command import main

    start, atoms = _ethanol_start(tmp)
    np.savez(tmp / "ref.npz", z=atoms.numbers, E=np.zeros(3))
    main(
        [
            str(_tiny_model_file(tmp)),
            str(start),
            "--steps",
            "1",
            "--out",
            str(tmp / "out"),
            "--reference",
            str(tmp / "ref.npz"),
            "--no-progress",
        ]
    )


@case(
    "simulation",
    "MD reference whose atoms are in another order than START",
    ValueError,
    r"START's bond \d+-\d+ .* is far outside its range in the reference data .* same atoms in the same order",
)
def _(tmp):
    from pyg_schnet.experiments.md_command import main

    start, atoms = _ethanol_start(tmp)
    np.savez(tmp / "ref.npz", R=atoms.positions[::-1][None], z=atoms.numbers)
    main(
        [
            str(_tiny_model_file(tmp)),
            str(start),
            "--steps",
            "1",
            "--out",
            str(tmp / "out"),
            "--reference",
            str(tmp / "ref.npz"),
            "--no-progress",
        ]
    )


@case(
    "simulation",
    "MD trajectory interval that is not a multiple of the log interval",
    ValueError,
    r"traj_interval \(15\) must be 0 or a multiple of log_interval \(10\)",
)
def _(tmp):
    from pyg_schnet.experiments.md_command import main

    start, _ = _ethanol_start(tmp)
    main(
        [
            str(_tiny_model_file(tmp)),
            str(start),
            "--steps",
            "20",
            "--log-interval",
            "10",
            "--traj-interval",
            "15",
            "--out",
            str(tmp / "out"),
            "--no-progress",
        ]
    )
