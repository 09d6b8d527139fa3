"""Audit cases of issue 20 (defects 3, 8, 10, parts of 11 and 12): models that know their training
elements, one calculator shared by threads, checksums whatever the format tag, units a file records,
pickled modules, full disks, empty atoms, inference_mode and a model too large to build."""

from __future__ import annotations

import errno
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.io.model_file import model_payload

from .registry import case


def _model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10)
    model.set_standardization(-3.0, 1.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


def _ethanol_model_file(tmp: Path) -> Path:
    """A tiny model whose training domain is that of distorted ethanol (what the trainer records)."""
    from ase.build import molecule
    from torch_geometric.data import Data

    from pyg_schnet.train.domain import training_domain_of

    base = molecule("CH3CH2OH")
    gen = torch.Generator().manual_seed(0)
    data = [
        Data(
            z=torch.as_tensor(base.numbers),
            pos=(
                torch.as_tensor(base.positions) + 0.05 * torch.randn(9, 3, generator=gen, dtype=torch.float64)
            ).float(),
            energy=torch.tensor([-97000.0 + k]),
        )
        for k in range(8)
    ]
    model = _model()
    model.training_domain = training_domain_of(data)
    return save_model(model, tmp / "model.pt")


def _chloro_ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.numbers[atoms.numbers == 8] = 17
    return atoms


@case(
    "simulation",
    "ethanol-trained model given Cl instead of O (an energy within 0.02 eV of ethanol's, silently, before)",
    None,
    r"UnseenElementWarning: SchNetCalculator: atom 2 is Cl \(Z = 17\), an element this model never saw in training",
)
def _(tmp: Path) -> str:
    from pyg_schnet.models.domain import UnseenElementWarning
    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = _chloro_ethanol()
    atoms.calc = SchNetCalculator(_ethanol_model_file(tmp))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atoms.get_potential_energy()
    found = [w for w in caught if issubclass(w.category, UnseenElementWarning)]
    return f"computes and warns: UnseenElementWarning: {found[0].message}" if found else "computed without a word"


@case(
    "simulation",
    "ethanol-trained model given Cl instead of O, with unseen_elements='error'",
    ValueError,
    r"atom 2 is Cl \(Z = 17\), an element this model never saw in training \(it was trained on H, C, O\)",
)
def _(tmp: Path):
    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = _chloro_ethanol()
    atoms.calc = SchNetCalculator(_ethanol_model_file(tmp), unseen_elements="error")
    atoms.get_potential_energy()


@case(
    "simulation",
    "one calculator shared by two threads, ethanol and water, 150 calls each (253 of 600 raised before)",
    None,
    r"300 of 300 calls returned their own molecule's energy and forces, no exception",
)
def _(tmp: Path) -> str:
    from ase.build import molecule

    from pyg_schnet.simulation.ase import SchNetCalculator

    model = _model()
    shared = SchNetCalculator(model, method="autograd")
    names = ("CH3CH2OH", "H2O")
    reference = {
        name: SchNetCalculator(model, method="autograd").get_potential_energy(molecule(name)) for name in names
    }
    good, bad = [], []
    start = threading.Barrier(2)

    def hammer(name: str) -> None:
        atoms = molecule(name)
        atoms.calc = shared
        start.wait()
        for _ in range(150):
            try:
                atoms.calc.reset()  # recompute every call
                ok = abs(atoms.get_potential_energy() - reference[name]) < 1e-9 and len(atoms.get_forces()) == len(
                    atoms
                )
            except Exception as exc:  # noqa: BLE001 - counted as a failed call
                bad.append(type(exc).__name__)
                continue
            (good if ok else bad).append(name)

    threads = [threading.Thread(target=hammer, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bad:
        return f"{len(bad)} of 300 calls failed or returned another molecule's numbers: {sorted(set(bad))}"
    return f"{len(good)} of 300 calls returned their own molecule's energy and forces, no exception"


@case("simulation", "calculator on an empty Atoms()", ValueError, r"the Atoms object holds no atoms")
def _(tmp: Path):
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    atoms = Atoms()
    atoms.calc = SchNetCalculator(_model())
    atoms.get_potential_energy()


@case(
    "simulation",
    "calculator (method='autograd') called under torch.inference_mode() (raised 'does not require grad' before)",
    None,
    r"same energy and forces as outside it",
)
def _(tmp: Path) -> str:
    from ase.build import molecule

    from pyg_schnet.simulation.ase import SchNetCalculator

    model = _model()
    outside = molecule("CH3CH2OH")
    outside.calc = SchNetCalculator(model, method="autograd")
    inside = outside.copy()
    inside.calc = SchNetCalculator(model, method="autograd")
    with torch.inference_mode():
        energy, forces = inside.get_potential_energy(), inside.get_forces()
    same = energy == outside.get_potential_energy() and np.array_equal(forces, outside.get_forces())
    return "same energy and forces as outside it" if same else f"differs: {energy} vs {outside.get_potential_energy()}"


@case(
    "simulation",
    "calculator energy_unit='eV' on a model that records kcal/mol (energies 23x off, silently, before)",
    ValueError,
    r"'eV' contradicts the energy unit the model records, 'kcal/mol'",
)
def _(tmp: Path):
    from pyg_schnet.simulation.ase import SchNetCalculator

    SchNetCalculator(_model(), energy_unit="eV")


@case(
    "files",
    "model.pt with a damaged weight and its format tag edited to pyg_schnet.model/1 (checksum skipped before)",
    ValueError,
    r"model\.pt: checksum mismatch.*format tag 'pyg_schnet\.model/1'",
)
def _(tmp: Path):
    payload = model_payload(_model())
    payload["state_dict"]["head.net.0.weight"][0, 0] += 1.0
    torch.save({**payload, "format": "pyg_schnet.model/1"}, tmp / "model.pt")
    load_model(tmp / "model.pt")


@case(
    "files",
    "torch.save(model) (a pickled module) given as a model file",
    ValueError,
    r"holds a pickled module \(pyg_schnet\.models\.schnet\.SchNet.*Save a model with pyg_schnet\.save_model",
)
def _(tmp: Path):
    torch.save(_model(), tmp / "model.pt")
    load_model(tmp / "model.pt")


@case(
    "files",
    "save_model onto a full disk (OSError ENOSPC while writing; the file was not named before)",
    OSError,
    r"model\.pt: cannot write the model: the disk is full .*nothing was written under this name",
)
def _(tmp: Path):
    real = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    os.fsync = no_space
    try:
        save_model(_model(), tmp / "model.pt")
    finally:
        os.fsync = real
        left = sorted(p.name for p in tmp.iterdir())
        assert left == [], f"left behind: {left}"


@case(
    "model",
    "SchNet(hidden_channels=10**9) (a raw allocation failure before)",
    MemoryError,
    r"SchNet\(hidden_channels=1000000000, .*\) has 3e\+18 parameters, about 1\.12e\+10 GiB in float32",
)
def _(tmp: Path):
    try:
        SchNet(hidden_channels=10**9)
    except MemoryError as exc:  # the machine's memory in the message differs between machines
        raise MemoryError(re.sub(r"the \S+ GiB this machine has", "the <RAM> GiB this machine has", str(exc))) from None
