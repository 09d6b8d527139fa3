"""PNG figures of an MD run: energies over time and h(r) against reference data (matplotlib, Agg)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..train.plots import _finish, _pyplot
from .analysis import DistanceHistogram

if TYPE_CHECKING:
    from .simulate import MDResult


def plot_energies(result: "MDResult", path: os.PathLike | str, title: str = "") -> Path:
    """Potential, kinetic and total energy (eV, relative to the first total energy) and temperature
    against time (ps); the NVE drift line when the result has one."""
    plt = _pyplot()
    t_ps = result.time_fs / 1000
    e0 = float(result.total_eV[0]) if result.total_eV.size else 0.0
    fig, (ax_e, ax_t) = plt.subplots(2, 1, figsize=(7.0, 5.2), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
    ax_e.plot(t_ps, result.potential_eV - e0, lw=0.8, label="potential")
    ax_e.plot(t_ps, result.kinetic_eV, lw=0.8, label="kinetic")
    ax_e.plot(t_ps, result.total_eV - e0, lw=1.0, color="k", label="total")
    ax_e.set_ylabel(f"energy [eV] (potential, total: minus {e0:.3f} eV)")
    ax_e.legend(loc="upper right", fontsize=8)
    ax_e.grid(alpha=0.3)
    ax_t.plot(t_ps, result.temperature_K, lw=0.8, color="tab:red")
    ax_t.set_ylabel("temperature [K]")
    ax_t.set_xlabel("time [ps]")
    ax_t.grid(alpha=0.3)
    if result.instability is not None:
        for ax in (ax_e, ax_t):
            ax.axvline(result.instability.time_fs / 1000, color="tab:purple", ls="--", lw=1)
    label = f"{result.ensemble.upper()}, dt = {result.dt_fs:g} fs"
    if result.drift is not None:
        label += f"; drift {result.drift.meV_per_atom_per_ps:+.3g} meV/atom/ps"
    return _finish(plt, fig, path, title or label)


def plot_hr(simulation: DistanceHistogram, reference: DistanceHistogram, path: os.PathLike | str,
            mae: Optional[float] = None, title: str = "", labels=("simulation", "reference data")) -> Path:
    """h(r) of the simulation and of the reference data on the same axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(reference.centers, reference.density(), lw=1.4, color="k", label=f"{labels[1]} ({reference.frames} frames)")
    ax.plot(simulation.centers, simulation.density(), lw=1.0, color="tab:orange",
            label=f"{labels[0]} ({simulation.frames} frames)")
    ax.set_xlabel("interatomic distance r [Å]")
    ax.set_ylabel("h(r) [1/Å]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if mae is not None:
        title = (title + "; " if title else "") + f"MAE of h(r) = {mae:.4f}"
    return _finish(plt, fig, path, title)
