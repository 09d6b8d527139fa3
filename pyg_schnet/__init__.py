"""pyg-schnet: SchNet (Schütt et al., NeurIPS 2017) as a PyTorch Geometric extension.

The top level holds the model and its files only; importing it loads no trainer, data loader or
simulation code. The layers, lowest first (each imports only from those below it):

- model: :mod:`pyg_schnet.backend`, :mod:`pyg_schnet.nn`, :mod:`pyg_schnet.graph`, :mod:`pyg_schnet.models`;
- :mod:`pyg_schnet.io`: model files, units, atomic writes, records, plotting helpers, devices;
- :mod:`pyg_schnet.datasets`, :mod:`pyg_schnet.batching`, then :mod:`pyg_schnet.train` and
  :mod:`pyg_schnet.simulation`;
- :mod:`pyg_schnet.experiments`: the paper's protocols, ``evaluate``, ``md``, the demo;
- :mod:`pyg_schnet.cli`: the ``pyg-schnet`` command.
"""

from pyg_schnet.io.model_file import load_model, save_model
from pyg_schnet.models import MDEvaluator, SchNet, SchNetConfig

__all__ = ["MDEvaluator", "SchNet", "SchNetConfig", "load_model", "save_model"]
__version__ = "0.4.1"
