"""Deprecated (0.3.0): moved to :mod:`pyg_schnet.batching.dense`; removed in 0.5."""

from pyg_schnet._compat import alias

alias(__name__)
