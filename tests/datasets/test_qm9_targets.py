"""QM9's 12 training targets on the real 20-molecule excerpt: values against the raw line 2 converted by
hand, units, atom references, kinds, one processed file for every target, bad names."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import ase.units
import numpy as np
import pytest
import torch

from pyg_schnet.datasets import QM9, ScaleUnits
from pyg_schnet.datasets.qm9 import QM9_TARGETS, qm9_target

# The raw line 2 of a QM9 xyz file: "gdb <id>" and 15 properties in this order (the README of the
# published data set); written out here rather than taken from the module under test.
RAW_ORDER = ["A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]

HARTREE_EV = ase.units.Hartree
HARTREE_KCAL = ase.units.Hartree / (ase.units.kcal / ase.units.mol)
# what each target should be in training (unit, factor from the raw unit), its kind and its
# atomref.txt column, from the documentation of the data set (independent of the module's table)
EXPECTED = {
    "mu": ("e*Angstrom", ase.units.Debye, "dipole_moment", None, "Debye"),
    "alpha": ("Bohr^3", 1.0, "extensive", None, "Bohr^3"),
    "homo": ("eV", HARTREE_EV, "intensive", None, "eV"),
    "lumo": ("eV", HARTREE_EV, "intensive", None, "eV"),
    "gap": ("eV", HARTREE_EV, "intensive", None, "eV"),
    "r2": ("Bohr^2", 1.0, "extensive", None, "Bohr^2"),
    "zpve": ("kcal/mol", HARTREE_KCAL, "extensive", 1, "eV"),
    "U0": ("kcal/mol", HARTREE_KCAL, "extensive", 2, "eV"),
    "U": ("kcal/mol", HARTREE_KCAL, "extensive", 3, "eV"),
    "H": ("kcal/mol", HARTREE_KCAL, "extensive", 4, "eV"),
    "G": ("kcal/mol", HARTREE_KCAL, "extensive", 5, "eV"),
    "Cv": ("cal/(mol K)", 1.0, "extensive", 6, "cal/(mol K)"),
}
ENERGY_TARGETS = {"homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"}


def raw_line_2(text: str) -> Dict[str, float]:
    """The 15 properties of an xyz record's second line, by plain string handling."""
    fields = text.replace("\r\n", "\n").split("\n")[1].split()
    assert fields[0] == "gdb" and len(fields) == 17
    return dict(zip(RAW_ORDER, (float(v.replace("*^", "e")) for v in fields[2:])))


def atomref_columns(text: str) -> Dict[str, List[float]]:
    """``{element: [ZPVE, U0, U, H, G, Cv]}`` of an atomref.txt text, by plain string handling."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[0] in ("H", "C", "N", "O", "F"):
            rows[parts[0]] = [float(v) for v in parts[1:]]
    return rows


@pytest.fixture(scope="module")
def qm9_root(qm9_builder, tmp_path_factory) -> Path:
    # molecule 1 verbatim, 3 with '*^' floats, 7 uncharacterised (dropped)
    return qm9_builder.write_root(tmp_path_factory.mktemp("qm9_targets") / "qm9")


def test_the_twelve_targets_and_their_units_kinds_and_atomrefs():
    assert list(QM9_TARGETS) == ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]
    for name, (unit, factor, kind, atomref_column, literature) in EXPECTED.items():
        target = qm9_target(name)
        assert target.column == RAW_ORDER.index(name)
        assert (target.unit, target.kind, target.literature_unit) == (unit, kind, literature), name
        assert target.factor == pytest.approx(factor, rel=1e-12), name
        expected_ref = None if atomref_column is None else ["zpve", "U0", "U", "H", "G", "Cv"][atomref_column - 1]
        assert target.atomref == expected_ref, name
    # literature factors: 1 kcal/mol in eV, 1 e*Angstrom in Debye
    assert qm9_target("U0").literature_factor == pytest.approx(ase.units.kcal / ase.units.mol, rel=1e-12)
    assert qm9_target("mu").literature_factor == pytest.approx(1.0 / 0.2081943, rel=1e-6)
    assert qm9_target("homo").literature_factor == 1.0


@pytest.mark.parametrize("name", list(EXPECTED))
def test_target_values_are_the_raw_column_converted_by_hand(qm9_builder, qm9_root, name):
    unit, factor, kind, _, _ = EXPECTED[name]
    ds = QM9(qm9_root, target=name)
    assert ds.target.name == name and ds.target_kind == kind and ds.target_unit == unit
    assert ds.energy_unit == (unit if name in ENERGY_TARGETS else "")
    assert len(ds) == 19
    for data in ds:
        gdb_id = int(data.idx)
        raw = raw_line_2(qm9_builder.text(gdb_id, fortran=gdb_id == 3))
        assert data.energy.shape == (1,) and data.energy.dtype == torch.float64
        assert data.energy.item() == pytest.approx(raw[name] * factor, rel=1e-12, abs=0.0), (name, gdb_id)
        assert data.y[0, RAW_ORDER.index(name)].item() == raw[name]  # y stays raw
    # a split keeps the target
    part = ds[[0, 5]]
    assert part.target_kind == kind
    torch.testing.assert_close(part[1].energy, ds[5].energy, rtol=0, atol=0)


def test_one_processed_file_serves_every_target(qm9_root):
    for name in EXPECTED:
        ds = QM9(qm9_root, target=name)
        assert ds.rebuild_reason is None, name
    processed = sorted(p.name for p in (qm9_root / "processed").glob("*.pt"))
    assert len(processed) == 1, processed
    homo, gap = QM9(qm9_root, target="homo"), QM9(qm9_root, target="gap")
    assert not torch.equal(homo[0].energy, gap[0].energy)  # a different column, not the first one read


def test_atom_references_only_where_qm9_publishes_them(qm9_root, qm9_text_files):
    rows = atomref_columns(qm9_text_files.atomref)
    numbers = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
    for name, (_, factor, _, column, _) in EXPECTED.items():
        ref = QM9(qm9_root, target=name).target_atomref()
        if column is None:
            assert ref is None, name
            continue
        assert ref.shape == (100,) and ref.dtype == torch.float64
        expected = torch.zeros(100, dtype=torch.float64)
        for symbol, values in rows.items():
            expected[numbers[symbol]] = values[column - 1] * factor
        torch.testing.assert_close(ref, expected, rtol=1e-12, atol=0.0, msg=name)
    assert float(QM9(qm9_root, target="zpve").target_atomref().abs().max()) == 0.0  # atoms do not vibrate
    assert QM9(qm9_root).target_atomref() is None and QM9(qm9_root).target is None


def test_u0_target_equals_the_scale_units_path(qm9_root):
    by_target = QM9(qm9_root, target="U0")
    by_transform = QM9(qm9_root, transform=ScaleUnits(QM9.HARTREE_TO_KCAL_PER_MOL, target="U0"))
    for a, b in zip(by_target, by_transform):
        torch.testing.assert_close(a.energy, b.energy, rtol=0, atol=0)
    np.testing.assert_allclose(
        by_target.target_atomref().numpy(), (QM9.atomref("U0", qm9_root) * QM9.HARTREE_TO_KCAL_PER_MOL).numpy()
    )


@pytest.mark.parametrize(
    "name, message",
    [
        ("u0", r"unknown QM9 target 'u0' \(did you mean 'U0'\? names are case-sensitive\); the 12 targets are mu, "),
        ("A", r"rotational constants A, B, C are in QM9\.y but are not a training target"),
        ("energy", r"unknown QM9 target 'energy'; the 12 targets are mu, alpha, homo, lumo, gap, r2, zpve, U0, U, "),
        (10, r"unknown QM9 target 10; the 12 targets"),
    ],
)
def test_unknown_target_is_refused_before_any_file_is_touched(tmp_path, name, message):
    root = tmp_path / "never_created"
    with pytest.raises(ValueError, match=message):
        QM9(root, target=name)
    assert not root.exists()
