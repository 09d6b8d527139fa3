"""Models built from the SchNet blocks: the config, the model, its dense path and its MD evaluator."""

from pyg_schnet.models.config import PAPER_CONFIG, SchNetConfig
from pyg_schnet.models.domain import TrainingDomain, UnseenElementError, UnseenElementWarning
from pyg_schnet.models.md_evaluator import MDEvaluator
from pyg_schnet.models.representation import SchNetRepresentation
from pyg_schnet.models.schnet import SchNet

__all__ = [
    "MDEvaluator",
    "PAPER_CONFIG",
    "SchNet",
    "SchNetConfig",
    "SchNetRepresentation",
    "TrainingDomain",
    "UnseenElementError",
    "UnseenElementWarning",
]
