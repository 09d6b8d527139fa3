"""Model and checkpoint files (issue 20): checksums whatever the tag, pickled modules, full disks, the
training domain's record, units that a file records, and a model too large to build."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
import torch

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.io.model_file import MODEL_FORMAT, load_verified, model_payload, seal
from pyg_schnet.io.units import resolve_units
from pyg_schnet.models.config import SchNetConfig, check_parameter_memory
from pyg_schnet.models.domain import TrainingDomain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))


def tiny_model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10)
    model.set_standardization(-2.0, 0.5)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    return model


def water():
    return torch.tensor([8, 1, 1]), torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


# ------------------------------------------------------------------------------------- checksums
def test_a_format_tag_edited_to_1_does_not_switch_the_checksum_off(tmp_path):
    # issue 20, defect 10: the tag edited to /1 loaded a file whose weights no longer match its sha256
    model = tiny_model()
    stored = model_payload(model)
    stored["state_dict"]["representation.embedding.weight"][1, 0] += 1.0  # a damaged weight
    torch.save({**stored, "format": "pyg_schnet.model/1"}, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=r"edited\.pt: checksum mismatch.*format tag 'pyg_schnet\.model/1'.*edited"):
        load_model(tmp_path / "edited.pt")
    # the tag alone edited (weights intact) also no longer matches: the tag is part of the content
    torch.save({**model_payload(model), "format": "pyg_schnet.model/1"}, tmp_path / "tag.pt")
    with pytest.raises(ValueError, match=r"tag\.pt: checksum mismatch"):
        load_model(tmp_path / "tag.pt")
    # a file of format /1 that carries a checksum matching its content loads
    v1 = {"format": "pyg_schnet.model/1", "config": dict(model.config), "state_dict": model.state_dict()}
    torch.save(seal(v1), tmp_path / "sealed_v1.pt")
    z, pos = water()
    torch.testing.assert_close(load_model(tmp_path / "sealed_v1.pt")(z, pos), model.eval()(z, pos), rtol=0, atol=0)
    torch.save({**model_payload(model), "format": "pyg_schnet.model/1", "sha256": None}, tmp_path / "none.pt")
    with pytest.raises(ValueError, match=r"none\.pt: field 'sha256' is None, not a checksum"):
        load_model(tmp_path / "none.pt")


def test_a_checkpoint_tag_edited_to_1_is_verified(tmp_path):
    payload = seal({"format": "pyg_schnet.checkpoint/2", "step": 3, "weights": torch.arange(4.0)})
    payload["weights"][0] = 9.0
    torch.save({**payload, "format": "pyg_schnet.checkpoint/1"}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt: checksum mismatch"):
        load_verified(tmp_path / "checkpoint.pt", ("pyg_schnet.checkpoint/1", "pyg_schnet.checkpoint/2"))


# --------------------------------------------------------------------------------- pickled files
def test_a_pickled_module_is_named_and_never_unpickled(tmp_path):
    model = tiny_model()
    torch.save(model, tmp_path / "pickled.pt")
    with pytest.raises(
        ValueError,
        match=r"pickled\.pt: holds a pickled module \(pyg_schnet\.models\.schnet\.SchNet, as torch\.save\(model\) "
        r"writes it\).*not loaded\. Save a model with pyg_schnet\.save_model\(model, path\)",
    ):
        load_model(tmp_path / "pickled.pt")


class _Payload:
    """Unpickling this runs ``os.system``: a weights-only load must refuse it without running it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_with_code_is_refused_unexecuted_and_named(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"format": MODEL_FORMAT, "config": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt: holds pickled Python objects \((posix|os|nt)\.system\)"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()


# ---------------------------------------------------------------------------------- full disks
def _full_disk(monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # the bytes are written, the flush to disk fails


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_while_saving_a_model_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    old = tiny_model(0)
    save_model(old, path)
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match=r"model\.pt: cannot write the model: the disk is full") as info:
        save_model(tiny_model(1), path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and _leftovers(tmp_path) == ["model.pt"]
    with pytest.raises(OSError, match=r"new\.pt: cannot write the model: the disk is full"):
        save_model(tiny_model(1), tmp_path / "new.pt")
    assert _leftovers(tmp_path) == ["model.pt"]


def test_a_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    from _trainer_tiny_data import synthetic_molecules
    from _trainer_tiny_data import tiny_model as trainer_model

    from pyg_schnet.train import TrainConfig, Trainer

    data = synthetic_molecules(6, seed=1)
    trainer = Trainer(trainer_model(), data[:4], data[4:], tmp_path, TrainConfig(batch_size=2, progress=False))
    trainer.save_checkpoint()
    before = trainer.checkpoint_path.read_bytes()
    trainer.step = 7
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match=r"checkpoint\.pt: cannot write the checkpoint: the disk is full"):
        trainer.save_checkpoint()
    assert trainer.checkpoint_path.read_bytes() == before and _leftovers(tmp_path) == ["checkpoint.pt"]


# ------------------------------------------------------------------------------ training domain
def test_the_training_domain_round_trips_and_old_formats_load_without_one(tmp_path):
    model = tiny_model()
    model.training_domain = TrainingDomain(
        elements=(1, 6, 8), num_structures=12, max_atoms=9, min_distance=0.88, energy_per_atom=(-10800.6, -10797.5)
    )
    save_model(model, tmp_path / "model.pt")
    stored = torch.load(tmp_path / "model.pt", weights_only=True)
    assert stored["format"] == MODEL_FORMAT == "pyg_schnet.model/3"
    assert stored["training_domain"]["elements"] == [1, 6, 8]
    assert load_model(tmp_path / "model.pt").training_domain == model.training_domain
    # format /2 (no domain field, sealed), as 0.3 wrote it, and the 0.2.0 fixture: domain unknown
    v2 = {k: v for k, v in model_payload(model).items() if k not in ("training_domain", "sha256")}
    torch.save(seal({**v2, "format": "pyg_schnet.model/2"}), tmp_path / "v2.pt")
    assert load_model(tmp_path / "v2.pt").training_domain is None
    assert load_model(FIXTURES / "model_v0.2.0.pt").training_domain is None


def test_a_malformed_training_domain_is_refused_by_field(tmp_path):
    model = tiny_model()
    payload = {k: v for k, v in model_payload(model).items() if k != "sha256"}
    payload["training_domain"] = {"elements": [8, 1], "num_structures": 1, "max_atoms": 3}
    torch.save(seal(payload), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: field 'training_domain': field 'elements' must be sorted"):
        load_model(tmp_path / "bad.pt")


# ---------------------------------------------------------------------------------------- units
def test_a_given_energy_unit_never_overrides_a_recorded_one():
    # issue 20, defect 11: --energy-unit eV on a kcal/mol model scaled every error by 23x
    model = tiny_model()
    with pytest.raises(
        ValueError, match=r"--energy-unit 'eV' contradicts the energy unit the model records, 'kcal/mol'"
    ):
        resolve_units(model, "eV", option="--energy-unit")
    assert resolve_units(model, "kcal / mol") == {"energy": "kcal/mol", "length": "Angstrom"}
    model.units = None  # a file of format /1: the given unit is the only word on it
    assert resolve_units(model, "eV") == {"energy": "eV", "length": "Angstrom"}


# --------------------------------------------------------------------------------- model memory
def test_a_huge_hidden_channels_is_refused_with_a_memory_estimate():
    with pytest.raises(
        MemoryError, match=r"SchNet\(hidden_channels=1000000000, .*\) has 3e\+18 parameters, about .* GiB"
    ):
        SchNet(hidden_channels=10**9)
    # the paper's model: 116,820 numbers, 467,280 bytes in float32
    check_parameter_memory(SchNetConfig(), limit=467_280)
    with pytest.raises(MemoryError, match=r"has 1\.17e\+05 parameters"):
        check_parameter_memory(SchNetConfig(), limit=467_279)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_interactions": 0},
        dict(hidden_channels=7, num_filters=5, num_interactions=2, num_gaussians=11, output_hidden=3, max_z=20),
    ],
)
def test_the_parameter_count_is_the_models(options):
    model = SchNet(**options)
    numbers = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert model.settings.parameter_count() == numbers
