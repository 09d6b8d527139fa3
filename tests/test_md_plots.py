"""energies.png of an MD run: no legend covers a curve, and a Langevin run shows its target temperature."""

import types

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.transforms import Bbox  # noqa: E402

from pyg_schnet.simulation.md import plots  # noqa: E402
from pyg_schnet.simulation.md.analysis import energy_drift  # noqa: E402
from pyg_schnet.simulation.md.result import MDResult  # noqa: E402

TARGET_K = 300.0


def make_result(ensemble: str) -> MDResult:
    """A hand-made run of 9 atoms, 201 logged steps of 0.5 fs: energies in eV that fill their axes
    (the legends' old place, upper right, lay on the curves), temperatures around 300 K."""
    t = np.arange(201) * 0.5
    rng = np.random.default_rng(0)
    kinetic = 0.35 + 0.05 * np.sin(t / 7.0) + 0.01 * rng.standard_normal(t.size)
    potential = -97000.0 - kinetic + (0.002 * t / t[-1] if ensemble == "nve" else 0.1 * np.cos(t / 11.0))
    temperature = kinetic / (1.5 * 9 * 8.617333e-5)
    result = MDResult(ensemble, 0.5, 200, 9, t, potential, kinetic, temperature, wall_s=1.0)
    if ensemble == "nve":
        result.drift = energy_drift(t, result.total_eV, 9)
    else:
        result.target_temperature_K = TARGET_K
    return result


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """plot_energies(result, tmp_path / 'energies.png') -> (written path, the saved figure, drawn as
    saved: tight_layout, suptitle). The figure is closed at the end of the test, not by plot_energies."""
    figures = []
    finish = plots.finish_figure

    def keep(plt, fig, path, title):
        figures.append(fig)
        return finish(types.SimpleNamespace(close=lambda _: None), fig, path, title)

    monkeypatch.setattr(plots, "finish_figure", keep)

    def draw(result):
        path = plots.plot_energies(result, tmp_path / f"energies_{result.ensemble}.png")
        fig = figures[-1]
        fig.canvas.draw()
        return path, fig

    yield draw
    for fig in figures:
        plots.pyplot().close(fig)


def curve_bboxes(ax):
    """Display-space extent of every data line (not the target / instability lines) of ``ax``."""
    boxes = []
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) > 2:
            pts = ax.transData.transform(np.column_stack([x, y]))
            boxes.append(Bbox.from_extents(*pts.min(axis=0), *pts.max(axis=0)))
    return boxes


@pytest.mark.parametrize("ensemble", ["nve", "langevin"])
def test_no_legend_overlaps_a_curve_or_another_axes(drawn, ensemble):
    path, fig = drawn(make_result(ensemble))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    renderer = fig.canvas.get_renderer()
    axes = fig.get_axes()
    assert len(axes) == (3 if ensemble == "nve" else 2)
    energy_legend = axes[0].get_legend()
    assert energy_legend is not None
    assert [t.get_text() for t in energy_legend.get_texts()][1] == "kinetic"
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert len(legends) == 2  # energies, and the drift fit (NVE) or the target temperature (Langevin)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (legend, ax)
            for curve in curve_bboxes(ax):
                assert not box.overlaps(curve)
        # inside the figure, clear of the title
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
        assert not box.overlaps(fig._suptitle.get_window_extent(renderer))


def test_langevin_temperature_panel_shows_the_target_as_a_dashed_line(drawn):
    _, fig = drawn(make_result("langevin"))
    ax_t = fig.get_axes()[-1]
    assert ax_t.get_ylabel() == "temperature [K]"
    targets = [line for line in ax_t.get_lines() if len(set(line.get_ydata())) == 1 and line.get_ydata()[0] == TARGET_K]
    assert len(targets) == 1
    (target,) = targets
    assert target.get_linestyle() == "--"
    assert "300" in target.get_label() and "target" in target.get_label()
    # a horizontal line over the whole time axis (axes coordinates 0..1), within the y range shown
    assert list(target.get_xdata()) == [0, 1]
    low, high = ax_t.get_ylim()
    assert low < TARGET_K < high
    assert "target 300 K (thermostat)" in [t.get_text() for t in ax_t.get_legend().get_texts()]


def test_nve_temperature_panel_has_no_target(drawn):
    _, fig = drawn(make_result("nve"))
    ax_t = fig.get_axes()[-1]
    assert ax_t.get_legend() is None
    assert all(len(set(line.get_ydata())) > 1 for line in ax_t.get_lines())


def test_target_temperature_defaults_to_none_and_follows_the_old_field_order():
    t = np.zeros(1)
    result = MDResult("nve", 0.5, 0, 1, t, t, t, t, 0.1, "completed", None, None, None, {})
    assert result.target_temperature_K is None


@pytest.mark.parametrize("ensemble, target", [("langevin", 123.0), ("nve", None)])
def test_run_md_records_the_thermostats_temperature(ensemble, target):
    from ase import Atoms
    from ase.calculators.lj import LennardJones

    from pyg_schnet.simulation.md import run_md

    atoms = Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0]])
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0)
    result = run_md(atoms, steps=2, dt_fs=1.0, ensemble=ensemble, temperature_K=123.0, log_interval=1)
    assert result.target_temperature_K == target
