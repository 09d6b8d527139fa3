"""Deprecated (0.3.0): moved to :mod:`pyg_schnet.experiments.paper_values`; removed in 0.5."""

from pyg_schnet._compat import alias

alias(__name__)
