"""SchNetCalculator (issue 20): shared by threads, elements outside the training set, empty atoms and
torch.inference_mode."""

from __future__ import annotations

import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.models.domain import UnseenElementError, UnseenElementWarning
from pyg_schnet.simulation.ase import SchNetCalculator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def small_model(cutoff=None, seed=0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=30, rbf_stop=5.0, cutoff=cutoff
    )
    model.set_standardization(mean=-3.0, std=2.5)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


# ---------------------------------------------------------------------------------------- threads
@pytest.mark.parametrize("method", ["exact", "autograd"])
def test_two_threads_sharing_one_calculator_each_get_their_own_molecule(method):
    # issue 20, defect 8: 253 of 600 calls raised, one returned the other molecule's energy
    model = small_model()
    molecules = {"ethanol": molecule("CH3CH2OH"), "water": molecule("H2O")}
    rng = np.random.default_rng(0)
    frames = {
        name: [atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape) for _ in range(150)]
        for name, atoms in molecules.items()
    }
    reference = {}
    for name, atoms in molecules.items():
        calc = SchNetCalculator(model, method=method)
        reference[name] = []
        for pos in frames[name]:
            work = atoms.copy()
            work.positions = pos
            work.calc = calc
            reference[name].append((work.get_potential_energy(), work.get_forces()))

    shared = SchNetCalculator(model, method=method)
    errors, wrong = [], []
    start = threading.Barrier(2)

    def hammer(name):
        atoms = molecules[name].copy()
        atoms.calc = shared
        start.wait()
        for k, pos in enumerate(frames[name]):
            try:
                atoms.positions = pos
                energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported
                errors.append(f"{name} call {k}: {type(exc).__name__}: {exc}")
                continue
            ref_e, ref_f = reference[name][k]
            if energy != pytest.approx(ref_e, rel=1e-12, abs=1e-12) or forces.shape != ref_f.shape:
                wrong.append(f"{name} call {k}: {energy} != {ref_e}")
            elif not np.allclose(forces, ref_f, rtol=1e-10, atol=1e-12):
                wrong.append(f"{name} call {k}: forces differ")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=hammer, args=(name,)) for name in molecules]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:5]
    assert not wrong, wrong[:5]


def test_a_calculator_survives_deepcopy_of_its_atoms():
    import copy

    atoms = molecule("H2O")
    atoms.calc = SchNetCalculator(small_model())
    energy = atoms.get_potential_energy()
    twin = copy.deepcopy(atoms)
    assert twin.calc is not atoms.calc
    twin.positions[0, 0] += 0.0  # same structure
    assert twin.get_potential_energy() == pytest.approx(energy, rel=1e-12)


# ---------------------------------------------------------------------------------- bad calls
@pytest.mark.parametrize("method", ["exact", "autograd"])
def test_empty_atoms_are_refused_by_name(method):
    calc = SchNetCalculator(small_model(), method=method)
    atoms = Atoms()
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"the Atoms object holds no atoms \(len\(atoms\) == 0\)"):
        atoms.get_potential_energy()
    water = molecule("H2O")
    water.calc = calc
    assert np.isfinite(water.get_potential_energy())  # nothing of the refused call stays behind


@pytest.mark.parametrize("method", ["exact", "autograd"])
def test_inference_mode_gives_the_same_energy_and_forces(method):
    # the autograd path raised "element 0 of tensors does not require grad" under torch.inference_mode
    model = small_model()
    atoms = molecule("CH3CH2OH")
    atoms.calc = SchNetCalculator(model, method=method)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    for context in (torch.inference_mode, torch.no_grad):
        other = atoms.copy()
        with context():
            other.calc = SchNetCalculator(model, method=method)  # built inside it, too
            assert other.get_potential_energy() == pytest.approx(energy, rel=1e-12)
            np.testing.assert_allclose(other.get_forces(), forces, rtol=1e-10, atol=1e-12)
        other.positions[0, 0] += 0.01  # and used outside it afterwards
        assert np.isfinite(other.get_forces()).all()


def test_inference_mode_periodic_stress():
    model = small_model(cutoff=4.0)
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.calc = SchNetCalculator(model)
    stress = atoms.get_stress()
    other = atoms.copy()
    other.calc = SchNetCalculator(model)
    with torch.inference_mode():
        np.testing.assert_allclose(other.get_stress(), stress, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ training domain
@pytest.fixture(scope="module")
def ethanol_model_file(tmp_path_factory):
    """A tiny model trained (one epoch) on distorted ethanol: elements H, C, O."""
    from torch_geometric.data import Data

    from pyg_schnet.train import TrainConfig, Trainer

    base = molecule("CH3CH2OH")
    gen = torch.Generator().manual_seed(0)
    data = []
    for _ in range(12):
        pos = torch.as_tensor(base.positions) + 0.05 * torch.randn(9, 3, generator=gen, dtype=torch.float64)
        energy = -97000.0 + float(pos.square().sum())
        data.append(Data(z=torch.as_tensor(base.numbers), pos=pos.float(), energy=torch.tensor([energy])))
    model = small_model()
    model.set_standardization(mean=-97000.0 / 9, std=1.0)
    out = tmp_path_factory.mktemp("eth")
    Trainer(model, data[:8], data[8:], out, TrainConfig(rho=0.0, batch_size=4, max_epochs=1, progress=False)).fit()
    return out / "model.pt", data[:8]


def test_the_model_file_records_the_training_domain(ethanol_model_file):
    path, train = ethanol_model_file
    domain = load_model(path).training_domain
    assert domain is not None and domain.elements == (1, 6, 8)
    assert domain.num_structures == 8 and domain.max_atoms == 9
    closest = min(float(torch.pdist(d.pos.double()).min()) for d in train)
    assert domain.min_distance == pytest.approx(closest, rel=1e-12)
    per_atom = [float(d.energy) / 9 for d in train]
    assert domain.energy_per_atom == pytest.approx((min(per_atom), max(per_atom)), rel=1e-12)


def test_an_element_outside_the_training_set_warns_or_is_refused(ethanol_model_file):
    path, _ = ethanol_model_file
    atoms = molecule("CH3CH2OH")
    oxygen = int(np.flatnonzero(atoms.numbers == 8)[0])
    atoms.numbers[oxygen] = 17  # Cl instead of O
    atoms.calc = SchNetCalculator(path)
    message = (
        rf"atom {oxygen} is Cl \(Z = 17\), an element this model never saw in training \(it was trained on H, C, O\)"
    )
    with pytest.warns(UnseenElementWarning, match=message):
        energy = atoms.get_potential_energy()
    assert np.isfinite(energy)
    atoms.calc = SchNetCalculator(path, unseen_elements="error")
    with pytest.raises(UnseenElementError, match=message):
        atoms.get_potential_energy()
    with pytest.raises(UnseenElementError, match=message):  # a second call is refused too, nothing cached
        atoms.get_potential_energy()
    atoms.calc = SchNetCalculator(path, unseen_elements="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenElementWarning)
        assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-12)
    with pytest.raises(ValueError, match=r"unseen_elements must be one of \('warn', 'error', 'ignore'\)"):
        SchNetCalculator(path, unseen_elements="raise")


def test_training_elements_and_old_model_files_do_not_warn(ethanol_model_file):
    path, _ = ethanol_model_file
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenElementWarning)
        ethanol = molecule("CH3CH2OH")
        ethanol.calc = SchNetCalculator(path, unseen_elements="error")
        ethanol.get_potential_energy()
        old = load_model(FIXTURES / "model_v0.2.0.pt")  # format /2: the domain is unknown
        assert old.training_domain is None
        chlorine = molecule("CH3Cl")
        chlorine.calc = SchNetCalculator(old, unseen_elements="error")
        assert np.isfinite(chlorine.get_potential_energy())


def test_a_model_without_a_trainer_saves_no_domain(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "model.pt")
    assert load_model(tmp_path / "model.pt").training_domain is None


def _md17_file(path: Path, numbers) -> Path:
    """An npz in the layout of the published MD17 files: 4 distorted copies of ethanol with ``numbers``."""
    base = molecule("CH3CH2OH")
    rng = np.random.default_rng(1)
    positions = base.positions + rng.normal(scale=0.05, size=(4, 9, 3))
    energies = (-97000.0 + positions.reshape(4, -1).__pow__(2).sum(axis=1)).reshape(4, 1)
    np.savez(path, R=positions, z=np.asarray(numbers), E=energies, F=np.zeros_like(positions),
             e_unit="kcal/mol", r_unit="Angstrom")  # fmt: skip
    return path


def test_evaluate_warns_or_refuses_an_element_outside_the_training_set(ethanol_model_file, tmp_path):
    from pyg_schnet.experiments.evaluate import main

    path, _ = ethanol_model_file
    numbers = molecule("CH3CH2OH").numbers.copy()
    oxygen = int(np.flatnonzero(numbers == 8)[0])
    numbers[oxygen] = 17
    raw = _md17_file(tmp_path / "chlorine.npz", numbers)
    argv = [str(path), "--dataset", "md17", "--root", str(tmp_path / "root"), "--raw-file", str(raw)]
    message = rf"model\.pt on md17, example 0: atom {oxygen} is Cl \(Z = 17\), an element this model never saw"
    with pytest.warns(UnseenElementWarning, match=message):
        result = main(argv)
    assert result["num_molecules"] == 4
    with pytest.raises(UnseenElementError, match=message):
        main([*argv, "--unseen-elements", "error"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenElementWarning)
        main([*argv, "--unseen-elements", "ignore"])
    with pytest.raises(ValueError, match=r"--energy-unit 'eV' contradicts the energy unit the model records"):
        main([*argv, "--energy-unit", "eV", "--unseen-elements", "ignore"])
