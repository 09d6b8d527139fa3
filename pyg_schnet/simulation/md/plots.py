"""PNG figures of an MD run: energies over time and h(r) against reference data (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pyg_schnet.io.plotting import finish_figure, pyplot
from pyg_schnet.simulation.md.analysis import DistanceHistogram
from pyg_schnet.simulation.md.result import MDResult

#: Legends sit outside the axes, so that none covers a curve: the energies' above their axes, the
#: smaller panels' to their right.
_LEGEND_ABOVE = dict(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, fontsize=8, borderaxespad=0.0)
_LEGEND_RIGHT = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)


def _energy_title(result: MDResult) -> str:
    label = f"{result.ensemble.upper()}, dt = {result.dt_fs:g} fs"
    if result.drift is not None:
        label += f"; drift {result.drift.meV_per_atom_per_ps:+.3g} meV/atom/ps"
    return label


def _energy_figure(result: MDResult) -> Any:
    """The figure of :func:`plot_energies` (a matplotlib ``Figure``), not yet titled, laid out or saved.

    Axes, top to bottom: energies (eV, relative to the first total energy) with their legend above the
    axes; for NVE the total energy alone (meV) with its fitted drift line; the temperature (K), for a
    Langevin run with the thermostat's target (``result.target_temperature_K``) as a dashed line.
    """
    plt = pyplot()
    t_ps = result.time_fs / 1000
    e0 = float(result.total_eV[0]) if result.total_eV.size else 0.0
    nve = result.ensemble == "nve"
    fig, axes = plt.subplots(
        3 if nve else 2,
        1,
        figsize=(7.0, 7.0 if nve else 5.2),
        sharex=True,
        gridspec_kw={"height_ratios": [2, 1, 1] if nve else [2, 1]},
    )
    ax_e, ax_t = axes[0], axes[-1]
    if nve:  # the conserved quantity on its own scale
        ax_d = axes[1]
        ax_d.plot(t_ps, 1e3 * (result.total_eV - e0), lw=0.6, color="k", label="total")
        if result.drift is not None:
            slope = result.drift.slope_eV_per_fs * 1e3  # meV/fs
            mid = result.time_fs.mean()
            fit = 1e3 * (result.total_eV.mean() - e0) + slope * (result.time_fs - mid)
            ax_d.plot(t_ps, fit, lw=1.2, color="tab:red", label="linear fit")
            ax_d.legend(**_LEGEND_RIGHT)
        ax_d.set_ylabel("total - E(0) [meV]")
        ax_d.grid(alpha=0.3)
    ax_e.plot(t_ps, result.potential_eV - e0, lw=0.8, label=f"potential - ({e0:.3f} eV)")
    ax_e.plot(t_ps, result.kinetic_eV, lw=0.8, label="kinetic")
    ax_e.plot(t_ps, result.total_eV - e0, lw=1.0, color="k", label=f"total - ({e0:.3f} eV)")
    ax_e.set_ylabel("energy [eV]")
    ax_e.legend(**_LEGEND_ABOVE)
    ax_e.grid(alpha=0.3)
    ax_t.plot(t_ps, result.temperature_K, lw=0.8, color="tab:red", label="instantaneous")
    if result.target_temperature_K is not None:
        target = result.target_temperature_K
        ax_t.axhline(target, color="k", ls="--", lw=1.0, label=f"target {target:g} K (thermostat)")
        ax_t.legend(**_LEGEND_RIGHT)
    ax_t.set_ylabel("temperature [K]")
    ax_t.set_xlabel("time [ps]")
    ax_t.grid(alpha=0.3)
    if result.instability is not None:
        for ax in axes:
            ax.axvline(result.instability.time_fs / 1000, color="tab:purple", ls="--", lw=1)
    return fig


def plot_energies(result: MDResult, path: os.PathLike | str, title: str = "") -> Path:
    """PNG at ``path``: potential, kinetic and total energy (eV, relative to the first total energy) and
    temperature (K) against time (ps); for NVE also the total energy alone (meV) with its fitted drift
    line, for Langevin the target temperature. The title defaults to the ensemble, time step (fs) and
    drift (meV/atom/ps)."""
    fig = _energy_figure(result)
    return finish_figure(pyplot(), fig, path, title or _energy_title(result))


def plot_hr(
    simulation: DistanceHistogram,
    reference: DistanceHistogram,
    path: os.PathLike | str,
    mae: Optional[float] = None,
    title: str = "",
    labels=("simulation", "reference data"),
) -> Path:
    """h(r) of the simulation and of the reference data on the same axes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(reference.centers, reference.density(), lw=1.4, color="k", label=f"{labels[1]} ({reference.frames} frames)")
    ax.plot(
        simulation.centers,
        simulation.density(),
        lw=1.0,
        color="tab:orange",
        label=f"{labels[0]} ({simulation.frames} frames)",
    )
    ax.set_xlabel("interatomic distance r [Å]")
    ax.set_ylabel("h(r) [1/Å]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if mae is not None:
        title = (title + "; " if title else "") + f"MAE of h(r) = {mae:.4f}"
    return finish_figure(plt, fig, path, title)
