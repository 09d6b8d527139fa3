"""The paper's experiments and the commands around them, on top of data sets, training and simulation.

- :mod:`pyg_schnet.experiments.runner`: the flags every protocol shares and one training run
  (:func:`~pyg_schnet.experiments.runner.run_experiment`) with its results files;
- :mod:`pyg_schnet.experiments.protocols`: Tables 1-3 (QM9, MD17, ISO17) behind ``benchmarks/*.py``;
- :mod:`pyg_schnet.experiments.paper_values`: the paper's numbers to compare with;
- :mod:`pyg_schnet.experiments.evaluate`: ``pyg-schnet evaluate``;
- :mod:`pyg_schnet.experiments.md_command`: ``pyg-schnet md``;
- :mod:`pyg_schnet.experiments.demo`: ``pyg-schnet demo`` and its embedded xTB data.
"""
