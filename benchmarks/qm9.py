"""Paper benchmark (qm9): see ``python benchmarks/qm9.py --help`` and docs/benchmarks.md.

The logic lives in :mod:`pyg_schnet.experiments.protocols.qm9` (shared with the demo and the tests).
"""

from pyg_schnet.experiments.protocols.qm9 import main

if __name__ == "__main__":
    main()
