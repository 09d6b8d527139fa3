"""Paper benchmark (iso17): see ``python benchmarks/iso17.py --help`` and docs/benchmarks.md.

The logic lives in :mod:`pyg_schnet.experiments.protocols.iso17` (shared with the demo and the tests).
"""

from pyg_schnet.experiments.protocols.iso17 import main

if __name__ == "__main__":
    main()
