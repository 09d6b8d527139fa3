"""pyg-schnet: SchNet (Schütt et al., NeurIPS 2017) as a PyTorch Geometric extension."""
from .models import SchNet

__all__ = ["SchNet"]
__version__ = "0.1.0"
