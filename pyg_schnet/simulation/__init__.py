"""Running a trained model: the ASE calculator (:mod:`pyg_schnet.simulation.ase`) and molecular dynamics
through ASE (:mod:`pyg_schnet.simulation.md`)."""
