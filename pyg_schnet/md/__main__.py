"""Deprecated (0.3.0): ``python -m pyg_schnet.md`` is ``pyg-schnet md`` (or ``python -m pyg_schnet md``)."""

from pyg_schnet.md.cli import main

if __name__ == "__main__":
    main()
