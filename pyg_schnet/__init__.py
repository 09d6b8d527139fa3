"""pyg-schnet: SchNet (Schütt et al., NeurIPS 2017) as a PyTorch Geometric extension.

The top level holds the model and its files only, and loads them on first use (PEP 562): ``import
pyg_schnet`` imports nothing, ``pyg_schnet.SchNet`` (or ``from pyg_schnet import SchNet``) loads the model
layer and :mod:`pyg_schnet.io`, and no name of the top level loads a trainer, data loader or simulation
code. So ``pyg-schnet --help`` and OpenMM-ML's entry point (:mod:`pyg_schnet.simulation.openmm_entry`)
cost no torch import. The layers, lowest first (each imports only from those below it):

- model: :mod:`pyg_schnet.backend`, :mod:`pyg_schnet.nn`, :mod:`pyg_schnet.graph`, :mod:`pyg_schnet.models`;
- :mod:`pyg_schnet.io`: model files, units, atomic writes, records, plotting helpers, devices, exports;
- :mod:`pyg_schnet.datasets`, :mod:`pyg_schnet.batching`, then :mod:`pyg_schnet.train` and
  :mod:`pyg_schnet.simulation`;
- :mod:`pyg_schnet.experiments`: the paper's protocols, ``evaluate``, ``md``, the demo;
- :mod:`pyg_schnet.cli`: the ``pyg-schnet`` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:  # what the names below are, for type checkers and IDEs
    from pyg_schnet.io.model_file import load_model, save_model
    from pyg_schnet.models import MDEvaluator, SchNet, SchNetConfig

__all__ = ["MDEvaluator", "SchNet", "SchNetConfig", "load_model", "save_model"]
__version__ = "0.4.1"

#: The top level's names and the module each comes from.
_HOMES: Dict[str, str] = {
    "MDEvaluator": "pyg_schnet.models",
    "SchNet": "pyg_schnet.models",
    "SchNetConfig": "pyg_schnet.models",
    "load_model": "pyg_schnet.io.model_file",
    "save_model": "pyg_schnet.io.model_file",
}


def __getattr__(name: str) -> Any:
    """A top-level name (:data:`__all__`), imported from its module on first use and kept."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pyg_schnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted({*globals(), *__all__})
