"""pyg-schnet: SchNet (Schütt et al., NeurIPS 2017) as a PyTorch Geometric extension."""
from .models import MDEvaluator, SchNet
from .train.checkpoint import load_model

__all__ = ["MDEvaluator", "SchNet", "load_model"]
__version__ = "0.2.0"
