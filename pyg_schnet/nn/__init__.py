"""SchNet building blocks as PyTorch / PyG modules."""
from .activations import ShiftedSoftplus, shifted_softplus
from .cfconv import CFConv, FilterNetwork
from .cutoff import CosineCutoff
from .dense import Dense
from .interaction import InteractionBlock
from .output import AtomwiseEnergy
from .radial import GaussianRBF
from . import fused  # noqa: E402  (imports cfconv and radial above)
from .fused import reference_path, set_fast_path

__all__ = [
    "AtomwiseEnergy",
    "CFConv",
    "CosineCutoff",
    "Dense",
    "FilterNetwork",
    "GaussianRBF",
    "InteractionBlock",
    "ShiftedSoftplus",
    "fused",
    "reference_path",
    "set_fast_path",
    "shifted_softplus",
]
