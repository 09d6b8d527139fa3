"""Deprecated (0.3.0): moved to :mod:`pyg_schnet.experiments.runner` and pyg_schnet.io.devices, pyg_schnet.io.files, pyg_schnet.io.records, pyg_schnet.datasets.raw_files; removed in 0.4."""
from pyg_schnet._compat import forward

__getattr__ = forward(__name__)
