"""SchNet building blocks as PyTorch / PyG modules."""

from pyg_schnet.backend import reference_path, set_fast_path
from pyg_schnet.nn import fused
from pyg_schnet.nn.activations import ShiftedSoftplus, shifted_softplus
from pyg_schnet.nn.atomwise import AtomwiseHead
from pyg_schnet.nn.cfconv import CFConv, FilterNetwork
from pyg_schnet.nn.cutoff import CosineCutoff
from pyg_schnet.nn.dense import Dense
from pyg_schnet.nn.dipole import DipoleMoment
from pyg_schnet.nn.interaction import InteractionBlock
from pyg_schnet.nn.output import AtomwiseEnergy, AtomwiseIntensive
from pyg_schnet.nn.radial import GaussianRBF

__all__ = [
    "AtomwiseEnergy",
    "AtomwiseHead",
    "AtomwiseIntensive",
    "CFConv",
    "CosineCutoff",
    "Dense",
    "DipoleMoment",
    "FilterNetwork",
    "GaussianRBF",
    "InteractionBlock",
    "ShiftedSoftplus",
    "fused",
    "reference_path",
    "set_fast_path",
    "shifted_softplus",
]
