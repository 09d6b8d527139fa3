"""Benchmark harness: pyg-schnet beside PyG's and SchNetPack's SchNet (speed and memory).

- :mod:`~harness.configs`: the hyper-parameter sets compared (``PAPER``, ``COMMON``, ...);
- :mod:`~harness.molecules`: real frames (shared data excerpts) and random clusters;
- :mod:`~harness.adapters`: the implementations behind one interface (training step,
  inference, the MD call);
- :mod:`~harness.timing`: interleaved timing, peak memory, skip estimates, log-log slopes;
- :mod:`~harness.environment`: machine, versions, command and date of a run;
- :mod:`~harness.batching`, :mod:`~harness.peers`, :mod:`~harness.scale`:
  the three benchmarks (``benchmarks/batching.py`` and ``benchmarks/peers.py`` are their command lines).

Nothing here is imported by the model code; SchNetPack is optional (a side environment, see
docs/benchmarks.md).
"""

from harness.configs import COMMON, PAPER, SCALE, ModelConfig

__all__ = ["ModelConfig", "PAPER", "COMMON", "SCALE"]
