"""The peer adapters compute the model they claim: same Gaussians, expected parameter counts, and
every step runs and changes what it should."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness import adapters
from harness.configs import BATCHING, COMMON, PAPER, ModelConfig
from harness.molecules import make_batch, random_cluster
from pyg_schnet import SchNet
from pyg_schnet.models.schnet import PAPER_CONFIG
from pyg_schnet.nn import GaussianRBF

TINY = ModelConfig("tiny", 16, 8, 2, 25, 0.0, 6.0, 10.0, None, 8)
TINY_CUTOFF = ModelConfig("tiny_cutoff", 16, 8, 2, 25, 0.0, 4.0, 10.0, 4.0, 8)


def _spk_or_skip():
    try:
        from harness.schnetpack_import import import_schnetpack

        return import_schnetpack()[0]
    except ImportError as exc:
        pytest.skip(f"schnetpack not importable here ({exc}); see docs/benchmarks.md for its side environment")


def _batch(sizes=(5, 9), seed=0):
    rng = np.random.default_rng(seed)
    return make_batch([random_cluster(n, rng) for n in sizes], rng)


def test_paper_config_is_the_paper_model():
    ours = SchNet(**PAPER.ours_kwargs())
    for key, value in PAPER_CONFIG.items():
        if key in PAPER.ours_kwargs():
            assert ours.config[key] == value, key


@pytest.mark.parametrize("config", [PAPER, COMMON, BATCHING], ids=lambda c: c.name)
def test_parameter_counts_differ_by_the_cfconv_biases_only(config):
    # PyG's cfconv maps features to filters without a bias (lin1 bias=False); ours has one per block.
    ours = adapters.OursSparse(config, torch.device("cpu"))
    pyg = adapters.PyGSchNet(config, torch.device("cpu"))
    assert ours.num_parameters() - pyg.num_parameters() == config.num_interactions * config.num_filters
    expected = {PAPER.name: 116_417, COMMON.name: 456_577, BATCHING.name: 116_417}[config.name]
    assert ours.num_parameters() == expected


@pytest.mark.parametrize("config", [PAPER, COMMON], ids=lambda c: c.name)
def test_pyg_gaussians_equal_ours(config):
    pyg = adapters.PyGSchNet(config, torch.device("cpu")).model
    default = -0.5 / ((config.rbf_stop - config.rbf_start) / (config.num_gaussians - 1)) ** 2
    assert not math.isclose(default, -config.gamma)  # the default would differ: the adapter must set it
    d = torch.linspace(0.3, config.rbf_stop - 0.1, 97)
    ours = GaussianRBF(config.rbf_start, config.rbf_stop, config.num_gaussians, config.gamma)(d.double())
    theirs = pyg.distance_expansion(d).double()
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-6)


def test_schnetpack_gaussians_equal_ours():
    spk = _spk_or_skip()
    for config in (PAPER, COMMON):
        radial = spk.nn.GaussianRBF(n_rbf=config.num_gaussians, cutoff=config.rbf_stop, start=config.rbf_start)
        adapters.set_schnetpack_gaussians(radial, config)
        d = torch.linspace(0.3, config.rbf_stop - 0.1, 97)
        ours = GaussianRBF(config.rbf_start, config.rbf_stop, config.num_gaussians, config.gamma)(d.double())
        torch.testing.assert_close(radial(d).double(), ours, rtol=1e-4, atol=1e-6)


def test_schnetpack_parameter_count():
    _spk_or_skip()
    spk = adapters.SchNetPack(PAPER, torch.device("cpu"))
    pyg = adapters.PyGSchNet(PAPER, torch.device("cpu"))
    assert spk.num_parameters() == pyg.num_parameters()  # the same layers as PyG's


def test_pyg_head_width_must_match():
    with pytest.raises(ValueError, match="head"):
        adapters.PyGSchNet(ModelConfig("bad", 16, 8, 2, 25, 0.0, 6.0, 10.0, None, 5), torch.device("cpu"))


@pytest.mark.parametrize("name", ["ours_sparse", "ours_dense", "pyg", "schnetpack"])
@pytest.mark.parametrize("config", [TINY, TINY_CUTOFF], ids=lambda c: c.name)
def test_each_step_runs(name, config):
    if name == "schnetpack":
        _spk_or_skip()
    runner = adapters.RUNNERS[name](config, torch.device("cpu"))
    data = _batch()
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train_step(data, with_forces=True)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, runner.model.parameters()))
    assert changed >= len(before) // 2  # Adam moved the weights the force loss reaches
    runner.train_step(data, with_forces=False)
    runner.inference_step(data)
    energy = runner.energy(data)
    assert energy.shape == (2,) and torch.isfinite(energy).all()
    z, pos = data.z[:5], data.pos[:5]
    e, f = runner.md_call(z, pos)
    assert e.numel() == 1 and f.shape == (5, 3) and not f.requires_grad
    assert torch.isfinite(f).all() and f.abs().max() > 0
    # forces of an isolated molecule sum to zero (translation invariance)
    assert f.sum(0).abs().max() <= 1e-4 * f.abs().max() + 1e-6


def test_md_call_forces_are_the_energy_gradient_for_pyg():
    runner = adapters.PyGSchNet(TINY, torch.device("cpu"))
    runner.model.double()
    rng = np.random.default_rng(1)
    z_np, pos_np = random_cluster(6, rng)
    z, pos = torch.as_tensor(z_np), torch.as_tensor(pos_np)
    _, forces = runner.md_call(z, pos)
    h = 1e-5
    shifted = pos.clone()
    shifted[2, 1] += h
    e_plus = runner.md_call(z, shifted)[0]
    shifted[2, 1] -= 2 * h
    e_minus = runner.md_call(z, shifted)[0]
    assert float(forces[2, 1]) == pytest.approx(-float(e_plus - e_minus) / (2 * h), rel=1e-5, abs=1e-8)


def test_make_runners_reports_what_cannot_be_built(monkeypatch):
    def fail(*args, **kwargs):
        raise ImportError("no schnetpack here")

    monkeypatch.setitem(adapters.RUNNERS, "schnetpack", fail)
    runners, unavailable = adapters.make_runners(["pyg", "schnetpack"], TINY, torch.device("cpu"))
    assert list(runners) == ["pyg"]
    assert unavailable == {"schnetpack": "ImportError: no schnetpack here"}


def test_md_call_through_the_calculator_equals_the_bare_call():
    pytest.importorskip("pyg_schnet.simulation.ase")
    import ase.units

    from harness import peers

    runner = adapters.OursSparse(TINY, torch.device("cpu"))
    steps, notes = peers.md_steps({"ours_sparse": runner}, torch.device("cpu"))
    assert "SchNetCalculator" in notes["ours_sparse"]
    frames = peers.md_frames()
    for k in range(2):  # each call moves to the next frame, as an MD step does
        energy_ev, forces_ev = steps["ours_sparse"]()
        z = torch.as_tensor(frames.z)
        e, f = runner.md_call(z, torch.as_tensor(frames.frames[k], dtype=torch.float32))
        to_ev = ase.units.kcal / ase.units.mol  # the model's default unit is kcal/mol
        assert energy_ev == pytest.approx(float(e) * to_ev, rel=1e-5)
        np.testing.assert_allclose(forces_ev, f.numpy() * to_ev, rtol=1e-4, atol=1e-5)


def test_md_call_without_the_calculator_is_marked(monkeypatch):
    from harness import peers

    monkeypatch.setattr(peers, "calculator_class", lambda: (None, "ImportError: not here"))
    runner = adapters.OursSparse(TINY, torch.device("cpu"))
    steps, notes = peers.md_steps({"ours_sparse": runner}, torch.device("cpu"))
    assert notes["ours_sparse"].startswith("bare model call") and "not here" in notes["ours_sparse"]
    energy, forces = steps["ours_sparse"]()
    assert forces.shape == (9, 3)
