"""``python -m pyg_schnet ...`` is the ``pyg-schnet`` console command (:mod:`pyg_schnet.cli`)."""

import sys

from pyg_schnet.cli import console

if __name__ == "__main__":
    sys.exit(console())
