"""pyg-schnet: SchNet (Schütt et al., NeurIPS 2017) as a PyTorch Geometric extension."""
from .models import SchNet
from .train.checkpoint import load_model

__all__ = ["SchNet", "load_model"]
__version__ = "0.1.0"
