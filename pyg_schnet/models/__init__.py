"""Models built from the SchNet blocks."""
from .inference import MDEvaluator
from .representation import SchNetRepresentation
from .schnet import PAPER_CONFIG, SchNet

__all__ = ["MDEvaluator", "PAPER_CONFIG", "SchNet", "SchNetRepresentation"]
