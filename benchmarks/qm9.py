"""Paper benchmark (qm9) and every QM9 target: see ``python benchmarks/qm9.py --help`` and docs/benchmarks.md.

``--target U0`` (the default) is the paper's Table 1; ``--target homo|lumo|gap|mu|alpha|r2|zpve|U|H|G|Cv``
trains that property with the head its physics needs and reports its MAE in the literature's unit beside
SchNet's published number (``results.json``: ``target``). The logic lives in
:mod:`pyg_schnet.experiments.protocols.qm9` (shared with ``pyg-schnet train qm9`` and the tests).
"""

from pyg_schnet.experiments.protocols.qm9 import main

if __name__ == "__main__":
    main()
