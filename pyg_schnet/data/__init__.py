"""Deprecated (0.3.0): moved to :mod:`pyg_schnet.batching`; removed in 0.5."""

from pyg_schnet._compat import forward

__getattr__ = forward(__name__)
