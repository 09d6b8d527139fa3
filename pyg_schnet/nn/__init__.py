"""SchNet building blocks as PyTorch / PyG modules."""
from .activations import ShiftedSoftplus, shifted_softplus
from .cfconv import CFConv, FilterNetwork
from .cutoff import CosineCutoff
from .dense import Dense
from .interaction import InteractionBlock
from .output import AtomwiseEnergy
from .radial import GaussianRBF

__all__ = [
    "AtomwiseEnergy",
    "CFConv",
    "CosineCutoff",
    "Dense",
    "FilterNetwork",
    "GaussianRBF",
    "InteractionBlock",
    "ShiftedSoftplus",
    "shifted_softplus",
]
