"""Test errors reported in the paper (Schütt et al., NeurIPS 2017), Tables 1-3, for side-by-side output,
and SchNet's published QM9 errors for every target (Schütt et al., J. Chem. Phys. 2018).

All numbers are mean absolute errors: energies in kcal/mol, forces in kcal/mol/Angstrom (the NeurIPS
tables); the QM9 targets in the unit the literature reports each in (:data:`QM9_TARGET_PAPER`).
``None`` marks a cell the paper leaves empty, or a number this project could not check against a stored
copy of its source (no number without a source).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

#: Table 1: QM9 U0, MAE in kcal/mol, by training-set size N.
TABLE1_QM9_U0: Dict[int, Dict[str, Optional[float]]] = {
    50_000: {"SchNet": 0.59, "DTNN": 0.94, "enn-s2s": None, "enn-s2s-ens5": None},
    100_000: {"SchNet": 0.34, "DTNN": 0.84, "enn-s2s": None, "enn-s2s-ens5": None},
    110_462: {"SchNet": 0.31, "DTNN": None, "enn-s2s": 0.45, "enn-s2s-ens5": 0.33},
}

#: Table 2: MD17, ``{molecule: {(N, column): (energy MAE, force MAE)}}``. Columns: ``'GDML'`` (forces
#: only, N = 1,000), ``'energy'`` (SchNet, rho = 0), ``'both'`` (SchNet, rho = 100), ``'DTNN'``
#: (energy only, N = 50,000).
TABLE2_MD17: Dict[str, Dict[tuple, tuple]] = {
    "benzene": {
        (1000, "GDML"): (0.07, 0.23),
        (1000, "energy"): (1.19, 14.12),
        (1000, "both"): (0.08, 0.31),
        (50000, "DTNN"): (0.04, None),
        (50000, "energy"): (0.08, 1.23),
        (50000, "both"): (0.07, 0.17),
    },
    "toluene": {
        (1000, "GDML"): (0.12, 0.24),
        (1000, "energy"): (2.95, 22.31),
        (1000, "both"): (0.12, 0.57),
        (50000, "DTNN"): (0.18, None),
        (50000, "energy"): (0.16, 1.79),
        (50000, "both"): (0.09, 0.09),
    },
    "malonaldehyde": {
        (1000, "GDML"): (0.16, 0.80),
        (1000, "energy"): (2.03, 20.41),
        (1000, "both"): (0.13, 0.66),
        (50000, "DTNN"): (0.19, None),
        (50000, "energy"): (0.13, 1.51),
        (50000, "both"): (0.08, 0.08),
    },
    "salicylic_acid": {
        (1000, "GDML"): (0.12, 0.28),
        (1000, "energy"): (3.27, 23.21),
        (1000, "both"): (0.20, 0.85),
        (50000, "DTNN"): (0.41, None),
        (50000, "energy"): (0.25, 3.72),
        (50000, "both"): (0.10, 0.19),
    },
    "aspirin": {
        (1000, "GDML"): (0.27, 0.99),
        (1000, "energy"): (4.20, 23.54),
        (1000, "both"): (0.37, 1.35),
        (50000, "energy"): (0.25, 7.36),
        (50000, "both"): (0.12, 0.33),
    },
    "ethanol": {
        (1000, "GDML"): (0.15, 0.79),
        (1000, "energy"): (0.93, 6.56),
        (1000, "both"): (0.08, 0.39),
        (50000, "energy"): (0.07, 0.76),
        (50000, "both"): (0.05, 0.05),
    },
    "uracil": {
        (1000, "GDML"): (0.11, 0.24),
        (1000, "energy"): (2.26, 20.08),
        (1000, "both"): (0.14, 0.56),
        (50000, "energy"): (0.13, 3.28),
        (50000, "both"): (0.10, 0.11),
    },
    "naphthalene": {
        (1000, "GDML"): (0.12, 0.23),
        (1000, "energy"): (3.58, 25.36),
        (1000, "both"): (0.16, 0.58),
        (50000, "energy"): (0.20, 2.58),
        (50000, "both"): (0.11, 0.11),
    },
}

#: Table 3: ISO17, ``{test split: {column: (energy MAE, force MAE)}}``; columns ``'mean predictor'``,
#: ``'energy'`` (rho = 0) and ``'both'`` (energy + forces).
TABLE3_ISO17: Dict[str, Dict[str, tuple]] = {
    "test_within": {"mean predictor": (14.89, 19.56), "energy": (0.52, 4.13), "both": (0.36, 1.00)},
    "test_other": {"mean predictor": (15.54, 19.15), "energy": (3.11, 5.71), "both": (2.40, 2.18)},
}

#: The paper the QM9 target numbers are from: SchNet's QM9 results for every target, 110k training
#: molecules.
QM9_TARGETS_SOURCE = (
    "K. T. Schütt, H. E. Sauceda, P.-J. Kindermans, A. Tkatchenko, K.-R. Müller, 'SchNet - A deep learning "
    "architecture for molecules and materials', J. Chem. Phys. 148, 241722 (2018), arXiv:1712.06113; "
    "QM9, 110k training molecules"
)
#: The training-set size of :data:`QM9_TARGETS_SOURCE`'s numbers ("110k").
QM9_TARGETS_N_TRAIN = 110_000

#: SchNet's published QM9 test MAE per target, ``{name: (value, unit, where this project checked it)}``.
#: ``value`` is ``None`` where no stored copy of the paper or of a page quoting it was found to check the
#: number against: those are left without a number rather than guessed.
QM9_TARGET_PAPER: Dict[str, Tuple[Optional[float], str, str]] = {
    "mu": (
        0.033,
        "Debye",
        "the benchmark list of arXiv:1712.06113 (J. Chem. Phys. 148, 241722) at "
        "www.wizwand.com/paper/68fa37891e209131ce8b325a (QM9 test)",
    ),
    "alpha": (None, "Bohr^3", "not checked"),
    "homo": (
        0.041,
        "eV",
        "quoted from arXiv:1712.06113 in github.com/atomistic-machine-learning/schnetpack/issues/77 "
        "(answered by the paper's first author)",
    ),
    "lumo": (None, "eV", "not checked"),
    "gap": (None, "eV", "not checked"),
    "r2": (None, "Bohr^2", "not checked"),
    "zpve": (None, "eV", "not checked"),
    "U0": (None, "eV", "not checked (the NeurIPS 2017 Table 1 values, kcal/mol, are TABLE1_QM9_U0)"),
    "U": (None, "eV", "not checked"),
    "H": (None, "eV", "not checked"),
    "G": (None, "eV", "not checked"),
    "Cv": (
        0.033,
        "cal/(mol K)",
        "the benchmark list of arXiv:1712.06113 (J. Chem. Phys. 148, 241722) at "
        "www.wizwand.com/paper/68fa37891e209131ce8b325a (QM9 test)",
    ),
}

#: MD22 (Chmiela et al., 2023) postdates the SchNet paper (2017), which therefore reports no MD22 number:
#: an MD22 run carries an empty paper row (no number without a source).
MD22_PAPER: Dict[str, Optional[float]] = {}


def md17_column(rho: float) -> str:
    """Table 2's SchNet column for a force weight: ``'energy'`` for rho = 0, else ``'both'``."""
    return "energy" if rho == 0 else "both"


def md17_row(molecule: str, n_train: int, rho: float) -> Dict[str, Optional[float]]:
    """The paper's numbers for one MD17 run: SchNet's (same N and rho) and, at N = 1,000, GDML's.

    Returns ``{'energy_mae', 'force_mae'}`` for SchNet plus ``'gdml_energy_mae'`` / ``'gdml_force_mae'``
    where the table has them; empty when the paper has no such row (e.g. another N).
    """
    key = molecule.replace(" ", "_").lower()
    table = TABLE2_MD17.get(key, {})
    row: Dict[str, Optional[float]] = {}
    cell = table.get((n_train, md17_column(rho)))
    if cell is not None:
        row["energy_mae"], row["force_mae"] = cell
    gdml = table.get((n_train, "GDML"))
    if gdml is not None:
        row["gdml_energy_mae"], row["gdml_force_mae"] = gdml
    return row


def qm9_row(n_train: int) -> Dict[str, Optional[float]]:
    """Table 1's SchNet U0 MAE for ``n_train`` (empty when the paper has no such N)."""
    cell = TABLE1_QM9_U0.get(n_train)
    return {} if cell is None else {"energy_mae": cell["SchNet"]}


def iso17_row(test_split: str, rho: float) -> Dict[str, Optional[float]]:
    """Table 3's SchNet numbers for ``test_split`` and ``rho``, and the mean predictor's."""
    table = TABLE3_ISO17.get(test_split)
    if table is None:
        return {}
    energy, force = table[md17_column(rho)]
    mean_e, mean_f = table["mean predictor"]
    return {
        "energy_mae": energy,
        "force_mae": force,
        "mean_predictor_energy_mae": mean_e,
        "mean_predictor_force_mae": mean_f,
    }


def qm9_target_row(target: str) -> Dict[str, Any]:
    """SchNet's published MAE for a QM9 target (:data:`QM9_TARGET_PAPER`): ``{"value", "unit", "n_train",
    "source", "checked"}``; ``value`` is ``None`` where the number could not be checked.

    Raises:
        KeyError: an unknown target, naming the 12.
    """
    if target not in QM9_TARGET_PAPER:
        raise KeyError(
            f"no published SchNet value for QM9 target {target!r}; the targets: {', '.join(QM9_TARGET_PAPER)}"
        )
    value, unit, checked = QM9_TARGET_PAPER[target]
    return {
        "value": value,
        "unit": unit,
        "n_train": QM9_TARGETS_N_TRAIN,
        "source": QM9_TARGETS_SOURCE,
        "checked": checked,
    }
