"""Deprecated (0.3.0): ``python -m pyg_schnet.demo`` is ``pyg-schnet demo`` (or ``python -m pyg_schnet demo``)."""

from pyg_schnet.experiments.demo.__main__ import main

if __name__ == "__main__":
    main()
