"""SchNet's interaction block."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from pyg_schnet.nn.activations import ShiftedSoftplus
from pyg_schnet.nn.cfconv import CFConv
from pyg_schnet.nn.dense import Dense


class InteractionBlock(nn.Module):
    r"""Interaction block of SchNet (paper, Fig. 2 middle) with its residual connection:

    .. math::
        \mathbf{v}_i = W_3\, \mathrm{ssp}\!\left(W_2 \,\mathrm{cfconv}(W_1 X + b_1)_i + b_2\right) + b_3,
        \qquad \mathbf{x}_i' = \mathbf{x}_i + \mathbf{v}_i

    i.e. atom-wise dense -> :class:`CFConv` -> atom-wise dense -> ssp -> atom-wise dense, added to
    the input. Blocks share no weights.

    Args:
        hidden_channels: atom feature size :math:`F` (64 in the paper).
        num_gaussians: size of the distance expansion.
        num_filters: feature maps inside the cfconv (64 in the paper).
        cutoff: cosine-cutoff radius in Angstrom, or ``None``.
        filter_activation: a shifted softplus after the filter network's second layer (the paper;
            ``False`` for PyG's and SchNetPack's SchNet, see :class:`FilterNetwork`).

    Shapes:
        - **input:** ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`, ``edge_weight`` :math:`(E)`,
          ``edge_attr`` :math:`(E, K)`
        - **output:** :math:`(N, F)`
    """

    def __init__(
        self,
        hidden_channels: int,
        num_gaussians: int,
        num_filters: int,
        cutoff: Optional[float] = None,
        filter_activation: bool = True,
    ) -> None:
        super().__init__()
        self.in2filter = Dense(hidden_channels, num_filters)
        self.conv = CFConv(num_filters, num_gaussians, cutoff, filter_activation)
        self.filter2out = Dense(num_filters, hidden_channels)
        self.act = ShiftedSoftplus()
        self.out = Dense(hidden_channels, hidden_channels)

    def reset_parameters(self) -> None:
        self.in2filter.reset_parameters()
        self.conv.reset_parameters()
        self.filter2out.reset_parameters()
        self.out.reset_parameters()

    def residual(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Optional[Tensor],
        mirrored: bool = False,
        filters: Optional[Tensor] = None,
    ) -> Tensor:
        r"""The update :math:`\mathbf{v}` alone (without adding ``x``); ``mirrored`` and ``filters``
        (precomputed cfconv filters) as in :class:`CFConv`."""
        h = self.conv(self.in2filter(x), edge_index, edge_weight, edge_attr, mirrored, filters)
        return self.out(self.act(self.filter2out(h)))

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Optional[Tensor],
        mirrored: bool = False,
        filters: Optional[Tensor] = None,
    ) -> Tensor:
        return x + self.residual(x, edge_index, edge_weight, edge_attr, mirrored, filters)
