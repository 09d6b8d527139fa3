"""Analysis of an MD run: energy drift and fluctuation, bond stability, distance distributions h(r).

Everything here works on numpy arrays in ASE's units (eV, Angstrom, fs) and is used both by
``pyg-schnet md`` while it runs and by tests and docs afterwards.

* :func:`energy_drift` -- slope of a least-squares line through the total energy (NVE), and its spread.
* :func:`bonded_pairs`, :func:`bond_lengths`, :func:`bond_ranges`, :class:`StabilityMonitor` -- the
  stability criterion of Fu et al., "Forces are not enough" (TMLR 2023): a run is unstable from the
  first frame where a bond length leaves its reference range by more than ``tolerance`` (0.5 A).
* :class:`DistanceHistogram`, :func:`hr_mae` -- the distribution h(r) of all interatomic distances and
  the integrated absolute difference of two such curves (Fu et al.'s "MAE of h(r)").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import numpy as np
from ase import Atoms, units

from pyg_schnet.io.files import open_npz
from pyg_schnet.validation import check_finite

#: Deviation from the reference range (Angstrom) beyond which a bond is broken (Fu et al. 2023).
BOND_TOLERANCE = 0.5


# ------------------------------------------------------------------------------------- energies
@dataclass(frozen=True)
class EnergyDrift:
    r"""Drift and fluctuation of the total energy :math:`E(t)` of a run of ``num_atoms`` atoms.

    ``slope`` is :math:`b` of the least-squares line :math:`E(t) \approx a + b t` (eV/fs);
    ``std`` the standard deviation of :math:`E(t)` (eV). The properties give them per atom in
    meV (per ps) and for the whole system in kcal/mol (per ps).
    """

    slope_eV_per_fs: float
    std_eV: float
    num_atoms: int
    duration_fs: float

    @property
    def meV_per_atom_per_ps(self) -> float:
        return self.slope_eV_per_fs * 1e3 * 1e3 / self.num_atoms

    @property
    def kcal_mol_per_ps(self) -> float:
        """Drift of the whole system's energy, kcal/mol per ps."""
        return self.slope_eV_per_fs * 1e3 / (units.kcal / units.mol)

    @property
    def fluctuation_meV_per_atom(self) -> float:
        return self.std_eV * 1e3 / self.num_atoms

    @property
    def fluctuation_kcal_mol(self) -> float:
        return self.std_eV / (units.kcal / units.mol)

    def summary(self) -> str:
        return (
            f"total-energy drift {self.meV_per_atom_per_ps:+.4f} meV/atom/ps "
            f"({self.kcal_mol_per_ps:+.4f} kcal/mol/ps for the system), fluctuation (std) "
            f"{self.fluctuation_meV_per_atom:.4f} meV/atom ({self.fluctuation_kcal_mol:.4f} kcal/mol) "
            f"over {self.duration_fs / 1000:g} ps"
        )


def energy_drift(time_fs: np.ndarray, total_eV: np.ndarray, num_atoms: int) -> EnergyDrift:
    """Least-squares slope and standard deviation of the total energy (see :class:`EnergyDrift`).

    Raises :class:`ValueError` for fewer than two samples, mismatched lengths or non-finite energies.
    """
    t = np.asarray(time_fs, dtype=np.float64)
    e = np.asarray(total_eV, dtype=np.float64)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"time and energy must be 1-D of equal length, got {t.shape} and {e.shape}")
    if t.size < 2:
        raise ValueError(f"a drift needs at least two samples, got {t.size}")
    if not np.isfinite(e).all():
        raise ValueError(f"total energy is not finite at sample {int(np.argmin(np.isfinite(e)))}")
    slope = float(np.polyfit(t - t.mean(), e, 1)[0])
    return EnergyDrift(slope, float(e.std()), int(num_atoms), float(t[-1] - t[0]))


# -------------------------------------------------------------------------------------- bonds
#: Bonded: closer than this times the sum of covalent radii. At 1.0 the radii of ASE (Cordero et al.
#: 2008) miss real bonds (C-H: 0.76 + 0.31 = 1.07 A against 1.09 A in ethanol); 1.25 takes every
#: covalent bond of organic molecules and no geminal pair (H-C-H about 1.8 A > 1.25 * 0.62 A).
BOND_RADIUS_FACTOR = 1.25


def bonded_pairs(atoms: Atoms, mult: float = BOND_RADIUS_FACTOR) -> np.ndarray:
    """Pairs ``[B, 2]`` (``i < j``) bonded in ``atoms``: closer than ``mult`` times the sum of ASE's
    covalent radii (:func:`ase.neighborlist.natural_cutoffs`); minimum-image distances when periodic."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=mult))
    keep = i < j
    pairs = np.unique(np.stack([i[keep], j[keep]], axis=1), axis=0)
    if pairs.size == 0:
        raise ValueError("no bonded pairs in the start structure (covalent radii): nothing to monitor")
    return pairs


def bond_lengths(
    positions: np.ndarray, pairs: np.ndarray, cell: Optional[np.ndarray] = None, pbc: Optional[np.ndarray] = None
) -> np.ndarray:
    """Lengths (Angstrom) of ``pairs`` ``[B, 2]`` in frames ``positions`` ``[T, N, 3]`` (or ``[N, 3]``),
    as ``[T, B]`` (or ``[B]``); minimum-image convention when ``cell``/``pbc`` are periodic."""
    pos = np.asarray(positions, dtype=np.float64)
    vec = pos[..., pairs[:, 1], :] - pos[..., pairs[:, 0], :]
    if cell is not None and pbc is not None and np.any(pbc):
        from ase.geometry import find_mic

        flat = vec.reshape(-1, 3)
        vec = find_mic(flat, cell, pbc)[0].reshape(vec.shape)
    return np.linalg.norm(vec, axis=-1)


def bond_ranges(reference_positions: np.ndarray, pairs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Smallest and largest length ``([B], [B])`` of each bond over reference frames ``[M, N, 3]``."""
    lengths = bond_lengths(np.asarray(reference_positions).reshape(-1, *np.shape(reference_positions)[-2:]), pairs)
    return lengths.min(axis=0), lengths.max(axis=0)


@dataclass(frozen=True)
class Instability:
    """The first frame of a run where a bond left its range: the frame's time and the bond."""

    time_fs: float
    pair: Tuple[int, int]
    length: float
    low: float
    high: float
    #: the monitor's tolerance (Angstrom) that the bond exceeded
    tolerance: float = BOND_TOLERANCE

    def summary(self) -> str:
        i, j = self.pair
        return (
            f"unstable at {self.time_fs / 1000:g} ps: bond {i}-{j} is {self.length:.3f} A, "
            f"outside its reference range [{self.low:.3f}, {self.high:.3f}] A by more than "
            f"{self.tolerance:g} A"
        )


class StabilityMonitor:
    """Checks frames against bond ranges (Fu et al. 2023); remembers the first unstable frame.

    Args:
        pairs: bonded pairs ``[B, 2]`` (:func:`bonded_pairs` of the start structure).
        low, high: reference range of each bond ``[B]`` (:func:`bond_ranges`).
        tolerance: allowed excursion beyond the range, Angstrom (finite, >= 0).
        cell, pbc: for minimum-image distances in periodic systems.

    Raises:
        ValueError: a negative or non-finite ``tolerance``.
    """

    def __init__(
        self,
        pairs: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        tolerance: float = BOND_TOLERANCE,
        cell: Optional[np.ndarray] = None,
        pbc: Optional[np.ndarray] = None,
    ) -> None:
        self.pairs = np.asarray(pairs)
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        check_finite("StabilityMonitor", "tolerance (Angstrom)", tolerance, low=0.0)
        self.tolerance = float(tolerance)
        self.cell, self.pbc = cell, pbc
        self.instability: Optional[Instability] = None

    @property
    def stable(self) -> bool:
        return self.instability is None

    def check(self, time_fs: float, positions: np.ndarray) -> bool:
        """Checks one frame ``[N, 3]``; returns whether the run is still stable."""
        if self.instability is not None:
            return False
        lengths = bond_lengths(positions, self.pairs, self.cell, self.pbc)
        excess = np.maximum(self.low - lengths, lengths - self.high)
        excess = np.where(np.isfinite(excess), excess, np.inf)
        worst = int(np.argmax(excess))
        if excess[worst] > self.tolerance:
            i, j = (int(k) for k in self.pairs[worst])
            self.instability = Instability(
                float(time_fs),
                (i, j),
                float(lengths[worst]),
                float(self.low[worst]),
                float(self.high[worst]),
                self.tolerance,
            )
            return False
        return True


# -------------------------------------------------------------------------------------- h(r)
class DistanceHistogram:
    r"""The distribution :math:`h(r)` of all interatomic distances, accumulated over frames.

    .. math::
        h(r) = \frac{1}{T P} \sum_t \sum_{i<j} \delta(r - \lVert \mathbf r_i(t) - \mathbf r_j(t) \rVert)

    estimated on ``bins`` equal bins on ``[0, r_max]`` Angstrom (normalised so that
    :math:`\int h\,dr = 1` over the range; distances beyond ``r_max`` are counted in ``overflow``).
    Non-periodic (molecules): plain distances between all atoms of a frame.
    """

    def __init__(self, r_max: float = 6.0, bins: int = 300) -> None:
        if r_max <= 0 or bins < 1:
            raise ValueError(f"r_max must be positive and bins >= 1, got {r_max} and {bins}")
        self.edges = np.linspace(0.0, float(r_max), int(bins) + 1)
        self.counts = np.zeros(int(bins), dtype=np.int64)
        self.overflow = 0
        self.frames = 0

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def width(self) -> float:
        return float(self.edges[1] - self.edges[0])

    def add(self, positions: np.ndarray) -> None:
        """Adds frames ``[N, 3]`` or ``[T, N, 3]`` (Angstrom)."""
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim == 2:
            pos = pos[None]
        n = pos.shape[1]
        i, j = np.triu_indices(n, k=1)
        d = np.linalg.norm(pos[:, j] - pos[:, i], axis=-1).ravel()
        counts, _ = np.histogram(d, bins=self.edges)
        self.counts += counts
        self.overflow += int(d.size - counts.sum())
        self.frames += pos.shape[0]

    def density(self) -> np.ndarray:
        """:math:`h(r)` on :attr:`centers` (1/Angstrom); zeros before any frame."""
        total = self.counts.sum()
        return self.counts / (total * self.width) if total else np.zeros_like(self.counts, dtype=np.float64)


def hr_mae(a: DistanceHistogram, b: DistanceHistogram) -> float:
    r""":math:`\int |h_a(r) - h_b(r)|\,dr` over the common bins (0 for equal curves, at most 2)."""
    if not np.array_equal(a.edges, b.edges):
        raise ValueError("the two histograms must have the same bins")
    return float(np.abs(a.density() - b.density()).sum() * a.width)


def reference_frames(path) -> np.ndarray:
    """Positions ``[M, N, 3]`` (Angstrom) of a reference data set: an MD17-style ``.npz`` (key ``R``)
    or any trajectory ASE reads."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such reference file")
    if path.suffix == ".npz":
        with open_npz(path) as data:  # no pickles; numpy's errors name the file
            if "R" not in data:
                raise ValueError(
                    f"{path}: no field 'R' (positions [frames, atoms, 3]) in this npz; fields: {sorted(data.files)}"
                )
            frames = np.asarray(data["R"], dtype=np.float64)
    else:
        from ase.io import read

        frames = np.stack([a.positions for a in _as_list(read(path, ":"))])
    if frames.ndim != 3 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: positions must have shape [frames, atoms, 3], got {frames.shape}")
    return frames


def _as_list(images) -> Iterable[Atoms]:
    return images if isinstance(images, list) else [images]
