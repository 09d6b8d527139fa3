"""Deprecated (0.3.0): ``python -m pyg_schnet.demo`` is ``pyg-schnet demo`` (or ``python -m pyg_schnet demo``)."""

import warnings

from pyg_schnet.experiments.demo.__main__ import main

if __name__ == "__main__":
    warnings.warn(
        "`python -m pyg_schnet.demo` is `pyg-schnet demo` since pyg-schnet 0.3.0 (removed in 0.5)",
        DeprecationWarning,
        stacklevel=1,
    )
    main()
