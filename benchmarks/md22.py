"""MD22 with the MD17 protocol: see ``python benchmarks/md22.py --help`` and docs/datasets.md.

The logic lives in :mod:`pyg_schnet.experiments.protocols.md22`, which runs the md17 protocol's code.
"""

from pyg_schnet.experiments.protocols.md22 import main

if __name__ == "__main__":
    main()
