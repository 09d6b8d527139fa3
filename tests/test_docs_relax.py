"""The geometry optimisation example of docs/simulation.md (docs/examples/relax.py) converges."""

import numpy as np
import torch
from ase.build import molecule

from pyg_schnet import SchNet
from pyg_schnet.simulation.ase import SchNetCalculator


def test_bfgs_with_the_calculator_reaches_a_stationary_point(load_repo_file):
    module = load_repo_file("docs/examples/relax.py")
    torch.manual_seed(0)
    model = SchNet(
        hidden_channels=16,
        num_filters=16,
        num_interactions=2,
        num_gaussians=25,
        rbf_stop=3.0,
        cutoff=3.0,
        output_hidden=8,
    )
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    start = molecule("CH3CH2OH")
    start.rattle(0.05, seed=0)
    start.calc = SchNetCalculator(model)
    relaxed, converged, steps = module.relax(model, start, fmax=1e-3, steps=300)
    assert converged and steps > 1
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 1e-3
    assert relaxed.get_potential_energy() < start.get_potential_energy()
    assert not np.allclose(relaxed.positions, start.positions)  # the start structure was copied, not moved
