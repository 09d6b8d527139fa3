"""A trained model always knows its units: the trainer takes them from the data set (or from the user),
refuses a run whose units nobody states or whose stated units contradict the data, and the calculator
then converts with them (issue: a model trained on eV data was read as kcal/mol, a 23x energy error)."""

from __future__ import annotations

import pytest
import torch
from _trainer_tiny_data import TINY, synthetic_molecules

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.datasets import EV_TO_KCAL_PER_MOL, MD17, ScaleUnits
from pyg_schnet.datasets.raw_files import link_raw_file
from pyg_schnet.datasets.transforms import energy_unit_of
from pyg_schnet.train import TrainConfig, Trainer, standardize_model

FAST = dict(batch_size=8, max_epochs=1, progress=False, rho=0.0)


@pytest.fixture
def ethanol_in_ev(shared_data, tmp_path):
    link_raw_file(shared_data / "md17" / "md17_ethanol.npz", tmp_path / "md17", "md17_ethanol.npz")
    data = MD17(tmp_path / "md17", "ethanol", transform=ScaleUnits(1.0 / EV_TO_KCAL_PER_MOL), log=False)
    return data


def test_a_model_trained_on_ev_data_gives_the_reference_energy_through_the_calculator(ethanol_in_ev, tmp_path):
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    assert energy_unit_of(ethanol_in_ev) == "eV"
    train, val = ethanol_in_ev[torch.arange(0, 40)], ethanol_in_ev[torch.arange(40, 48)]
    torch.manual_seed(0)
    model = SchNet(**TINY)
    standardize_model(model, train)
    trainer = Trainer(model, train, val, tmp_path / "run", TrainConfig(**FAST))
    trainer.fit()
    saved = load_model(tmp_path / "run" / "model.pt")
    assert saved.units == {"energy": "eV", "length": "Angstrom"}
    frame = ethanol_in_ev[100]
    reference_ev = float(frame.energy)  # about -4,214.8 eV
    atoms = Atoms(numbers=frame.z.numpy(), positions=frame.pos.double().numpy())
    atoms.calc = SchNetCalculator(tmp_path / "run" / "model.pt")
    # a standardised model predicts about the mean energy: within the data's spread (0.2 eV), not 23x off
    assert atoms.get_potential_energy() == pytest.approx(reference_ev, abs=1.0)


def test_data_sets_declare_their_units_through_transforms(ethanol_in_ev, shared_data, tmp_path):
    link_raw_file(shared_data / "md17" / "md17_ethanol.npz", tmp_path / "raw_kcal", "md17_ethanol.npz")
    native = MD17(tmp_path / "raw_kcal", "ethanol", log=False)
    assert energy_unit_of(native) == "kcal/mol"
    assert energy_unit_of(native[torch.arange(3)]) == "kcal/mol"
    assert energy_unit_of(torch.utils.data.Subset(ethanol_in_ev, [0, 1])) == "eV"
    assert energy_unit_of(synthetic_molecules(2)) is None
    odd = MD17(tmp_path / "raw_kcal", "ethanol", transform=ScaleUnits(3.0), log=False)
    assert energy_unit_of(odd) is None  # a factor that lands on no known unit
    named = MD17(tmp_path / "raw_kcal", "ethanol", transform=ScaleUnits(3.0, unit="kJ/mol"), log=False)
    assert energy_unit_of(named) == "kJ/mol"


def test_a_run_whose_units_nobody_states_is_refused_before_training(tmp_path):
    data = synthetic_molecules(6)
    model = SchNet(**TINY)
    with pytest.raises(
        ValueError, match=r"units of the training energies are unknown.*Trainer\(\.\.\., units=\.\.\.\)"
    ):
        Trainer(model, data[:4], data[4:], tmp_path, TrainConfig(**FAST))
    assert not (tmp_path / "checkpoint.pt").exists()
    Trainer(model, data[:4], data[4:], tmp_path, TrainConfig(**FAST), units="eV")
    assert model.units == {"energy": "eV", "length": "Angstrom"}


def test_stated_units_that_contradict_the_data_are_refused(ethanol_in_ev, tmp_path):
    train, val = ethanol_in_ev[torch.arange(0, 8)], ethanol_in_ev[torch.arange(8, 12)]
    with pytest.raises(
        ValueError, match=r"training energies are in eV \(the data set says so\) but the model is to predict kcal/mol"
    ):
        Trainer(SchNet(**TINY), train, val, tmp_path, TrainConfig(**FAST), units="kcal/mol")
    model = SchNet(**TINY)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}  # e.g. a kcal/mol model fine-tuned on eV data
    with pytest.raises(ValueError, match="the model is to predict kcal/mol"):
        Trainer(model, train, val, tmp_path, TrainConfig(**FAST))


def test_a_model_without_units_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="the model's units are unknown: set model.units"):
        save_model(SchNet(**TINY), tmp_path / "model.pt")
    assert not list(tmp_path.iterdir())
