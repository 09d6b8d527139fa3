"""Running a trained model: the ASE calculator (:mod:`pyg_schnet.simulation.ase`), molecular dynamics
through ASE (:mod:`pyg_schnet.simulation.md`), and the MD engines: LAMMPS through ``fix external``
(:mod:`pyg_schnet.simulation.lammps`), OpenMM through OpenMM-ML (:mod:`pyg_schnet.simulation.openmm`) and
TorchSim (:mod:`pyg_schnet.simulation.torchsim`)."""
