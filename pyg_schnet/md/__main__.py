"""``python -m pyg_schnet.md MODEL START --steps N ...``; see :mod:`pyg_schnet.md.cli`."""
from .cli import main

if __name__ == "__main__":
    main()
