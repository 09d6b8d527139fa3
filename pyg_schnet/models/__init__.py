"""Models built from the SchNet blocks."""
from .representation import SchNetRepresentation
from .schnet import PAPER_CONFIG, SchNet

__all__ = ["PAPER_CONFIG", "SchNet", "SchNetRepresentation"]
