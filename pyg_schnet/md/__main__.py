"""Deprecated (0.3.0): ``python -m pyg_schnet.md`` is ``pyg-schnet md`` (or ``python -m pyg_schnet md``)."""

import warnings

from pyg_schnet.experiments.md_command import main

if __name__ == "__main__":
    warnings.warn(
        "`python -m pyg_schnet.md` is `pyg-schnet md` since pyg-schnet 0.3.0 (removed in 0.5)",
        DeprecationWarning,
        stacklevel=1,
    )
    main()
