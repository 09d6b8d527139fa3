"""Compiled and graph-captured inference (pyg_schnet.models.compiled) computes what eager computes:
float64, 1e-10, for the MD evaluator (all pairs and a Verlet list that is rebuilt) and for the model's
autograd path (molecules of several sizes, a periodic structure); without a C++ compiler it runs
eagerly with one warning; CUDA-graph capture is refused on the CPU and exact on CUDA."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from pyg_schnet import SchNet
from pyg_schnet.models import compiled
from pyg_schnet.models.md_evaluator import ALL_PAIRS_MAX_ATOMS, MDEvaluator

#: A small model: compiles faster; the compiled code is the same for any width.
SMALL = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=50, rbf_stop=6.0, gamma=4.0)
TOL = 1e-10

needs_compiler = pytest.mark.skipif(
    compiled.compiler_unavailable(torch.device("cpu")) is not None,
    reason=f"inductor cannot compile here: {compiled.compiler_unavailable(torch.device('cpu'))}",
)


def _model(**options) -> SchNet:
    torch.manual_seed(0)
    model = SchNet(**{**SMALL, **options}).double().eval()
    model.set_standardization(-10.0, 2.0)
    return model


def ase_molecule(name: str):
    from ase.build import molecule

    atoms = molecule(name)
    return torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions, dtype=torch.float64)


def _cluster(num_atoms: int, seed: int = 0, density: float = 0.06):
    """A random C/H/N/O cluster (z, pos) with no two atoms closer than 1 A (float64)."""
    from harness.molecules import random_cluster

    z, pos = random_cluster(num_atoms, np.random.default_rng(seed), density)
    return torch.as_tensor(z), torch.as_tensor(pos)


def _close(a, b, tol: float = TOL) -> float:
    scale = max(1.0, float(b[1].abs().max()))
    worst = max(float((x - y).abs().max()) for x, y in zip(a, b)) / scale
    assert worst <= tol, f"compiled differs from eager by {worst:.2e} (relative to the largest force)"
    return worst


@needs_compiler
def test_compiled_evaluator_equals_eager_on_moving_ethanol_and_a_rebuilt_verlet_list():
    z, pos = ase_molecule("CH3CH2OH")
    gen = torch.Generator().manual_seed(1)
    evaluator = MDEvaluator(_model(), z)
    fast = compiled.compile_evaluator(evaluator)
    assert fast.fallback_reason is None and fast.mode == compiled.DEFAULT_MODE
    for _ in range(4):  # positions that move: the Gaussian window changes between calls
        p = pos + 0.1 * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)
        _close(fast(p), evaluator(p))

    # a molecule with a cutoff above ALL_PAIRS_MAX_ATOMS atoms: Verlet list, rebuilt when atoms move far
    z, pos = _cluster(ALL_PAIRS_MAX_ATOMS + 8)
    evaluator = MDEvaluator(_model(cutoff=3.0, rbf_stop=3.0), z, skin=0.5)
    fast = compiled.compile_evaluator(evaluator)
    pairs = []
    for step in range(3):
        p = pos + 0.3 * step * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)
        _close(fast(p), evaluator(p))
        pairs.append(evaluator._edge_cache.src.numel())
    assert len(set(pairs)) > 1, "the Verlet list was never rebuilt with another number of pairs"


@needs_compiler
def test_compiled_energy_and_forces_equals_eager_for_molecules_and_a_periodic_structure():
    model = _model(cutoff=4.0, rbf_stop=4.0)
    fast = compiled.compile_energy_and_forces(model)
    for name in ("CH3CH2OH", "C6H6"):  # two sizes: the second call follows with dynamic shapes
        z, pos = ase_molecule(name)
        _close(fast(z, pos), model.energy_and_forces(z, pos))
    z, pos = _cluster(24, seed=3, density=0.1)
    cell = torch.eye(3, dtype=torch.float64).unsqueeze(0) * float(pos.max() - pos.min() + 1.0)
    pbc = torch.ones(1, 3, dtype=torch.bool)
    with warnings.catch_warnings():  # a frame dynamo cannot trace runs eagerly, with a warning
        warnings.simplefilter("ignore", compiled.CompileFallbackWarning)
        _close(fast(z, pos, None, cell, pbc), model.energy_and_forces(z, pos, None, cell, pbc))
    assert fast.fallback_reason is None  # still compiled (at most a frame of it eager)
    # bad input: the model's own error, as the eager call raises it
    z, pos = ase_molecule("CH3CH2OH")
    pos[4] = pos[2]
    with pytest.raises(ValueError, match=r"atoms 2 and 4 of molecule 0 are at the same position") as eager_error:
        model.energy_and_forces(z, pos)
    with pytest.raises(ValueError, match=re.escape(str(eager_error.value))):
        fast(z, pos)


def test_without_a_cxx_compiler_the_wrappers_run_eagerly_with_one_warning():
    import torch._inductor.config as inductor_config

    before = compiled.compiler_unavailable(torch.device("cpu"))
    z, pos = ase_molecule("CH3CH2OH")
    model = _model()
    evaluator = MDEvaluator(model, z)
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/bin/c++")}):  # restored after the block
        with pytest.warns(compiled.CompileFallbackWarning, match=r"runs eagerly .*no working C\+\+ compiler") as caught:
            fast = compiled.compile_evaluator(evaluator)
        with pytest.warns(compiled.CompileFallbackWarning, match="compiled model forward runs eagerly"):
            fast_model = compiled.compile_energy_and_forces(model)
        assert len(caught) == 1 and "no working C++ compiler" in (fast.fallback_reason or "")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no further warning per call
            for result, reference in ((fast(pos), evaluator(pos)), (fast(pos + 0.05), evaluator(pos + 0.05))):
                assert all(torch.equal(a, b) for a, b in zip(result, reference))
        assert all(torch.equal(a, b) for a, b in zip(fast_model(z, pos), model.energy_and_forces(z, pos)))
    assert compiled.compiler_unavailable(torch.device("cpu")) == before  # the setting is restored


def test_modes_and_inputs_are_checked():
    z, _ = ase_molecule("CH3CH2OH")
    evaluator = MDEvaluator(_model(), z)
    with pytest.raises(ValueError, match=r"compile mode must be one of \('default', 'reduce-overhead'"):
        compiled.compile_evaluator(evaluator, mode="fastest")
    with pytest.raises(TypeError, match="compile_evaluator needs an MDEvaluator, got SchNet"):
        compiled.compile_evaluator(_model())  # type: ignore[arg-type]


def test_cuda_graph_capture_is_refused_on_the_cpu():
    z, pos = ase_molecule("CH3CH2OH")
    with pytest.raises(ValueError, match="CUDA graphs need an evaluator on a CUDA device, this one is on cpu"):
        compiled.capture_md_call(MDEvaluator(_model(), z), pos)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs a CUDA device (none here)")
def test_cuda_graph_replay_equals_eager_and_refuses_a_verlet_list():
    z, pos = ase_molecule("CH3CH2OH")
    model = _model().cuda()
    evaluator = MDEvaluator(model, z.cuda())
    graphed = compiled.capture_md_call(evaluator, pos.cuda())
    gen = torch.Generator().manual_seed(2)
    for _ in range(4):
        p = (pos + 0.1 * torch.randn(pos.shape, generator=gen, dtype=pos.dtype)).cuda()
        _close(graphed(p), evaluator(p))
    z, pos = _cluster(ALL_PAIRS_MAX_ATOMS + 8)
    verlet = MDEvaluator(_model(cutoff=3.0, rbf_stop=3.0).cuda(), z.cuda())
    with pytest.raises(ValueError, match="Verlet pair list"):
        compiled.capture_md_call(verlet, pos.cuda())


@needs_compiler
def test_calculator_with_compile_equals_the_eager_calculator():
    from ase.build import molecule

    from pyg_schnet.simulation.ase import SchNetCalculator

    model = _model()
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    eager = SchNetCalculator(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", compiled.CompileFallbackWarning)  # inductor runs here: no fallback
        fast = SchNetCalculator(model, compile=True)
        atoms = molecule("CH3CH2OH")
        rng = np.random.default_rng(0)
        for _ in range(3):  # moving atoms: one compile, then the compiled code
            atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
            atoms.calc = eager
            reference = (atoms.get_potential_energy(), atoms.get_forces())
            atoms.calc = fast
            result = (atoms.get_potential_energy(), atoms.get_forces())
            assert abs(result[0] - reference[0]) <= TOL * max(1.0, abs(reference[0]))
            np.testing.assert_allclose(result[1], reference[1], rtol=0, atol=TOL * np.abs(reference[1]).max())
    assert fast.compile_mode == compiled.DEFAULT_MODE


def test_calculator_refuses_an_unknown_compile_mode():
    from pyg_schnet.simulation.ase import SchNetCalculator

    model = _model()
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    with pytest.raises(ValueError, match=r"compile must be False, True or one of"):
        SchNetCalculator(model, compile="fastest")
