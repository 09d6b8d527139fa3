"""Benchmark harness: pyg-schnet beside PyG's and SchNetPack's SchNet (speed and memory).

- :mod:`~pyg_schnet.bench.configs`: the hyper-parameter sets compared (``PAPER``, ``COMMON``, ...);
- :mod:`~pyg_schnet.bench.molecules`: real frames (shared data excerpts) and random clusters;
- :mod:`~pyg_schnet.bench.adapters`: the implementations behind one interface (training step,
  inference, the MD call);
- :mod:`~pyg_schnet.bench.timing`: interleaved timing, peak memory, skip estimates, log-log slopes;
- :mod:`~pyg_schnet.bench.environment`: machine, versions, command and date of a run;
- :mod:`~pyg_schnet.bench.batching`, :mod:`~pyg_schnet.bench.peers`, :mod:`~pyg_schnet.bench.scale`:
  the three benchmarks (``benchmarks/batching.py`` and ``benchmarks/peers.py`` are their command lines).

Nothing here is imported by the model code; SchNetPack is optional (a side environment, see
docs/benchmarks.md).
"""
from .configs import COMMON, PAPER, SCALE, ModelConfig

__all__ = ["ModelConfig", "PAPER", "COMMON", "SCALE"]
