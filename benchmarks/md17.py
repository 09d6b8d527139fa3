"""Paper benchmark (md17): see ``python benchmarks/md17.py --help`` and docs/benchmarks.md.

The logic lives in :mod:`pyg_schnet.experiments.protocols.md17` (shared with the demo and the tests).
"""

from pyg_schnet.experiments.protocols.md17 import main

if __name__ == "__main__":
    main()
