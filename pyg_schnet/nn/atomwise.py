"""The atom-wise network every output head shares (:class:`AtomwiseHead`)."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from pyg_schnet.nn.activations import head_activation
from pyg_schnet.nn.dense import Dense


class AtomwiseHead(nn.Module):
    r"""An atom-wise network from atom features to one number per atom (paper, Fig. 2 left),

    .. math::
        y_i = W_2\, \mathrm{act}(W_1 \mathbf{x}_i + b_1) + b_2,

    with the ``mean`` and ``std`` buffers a head de-standardises :math:`y_i` with. The base of
    :class:`~pyg_schnet.nn.AtomwiseEnergy` (and :class:`~pyg_schnet.nn.AtomwiseIntensive`) and
    :class:`~pyg_schnet.nn.DipoleMoment`, which say what the numbers mean and how they are pooled.

    Args:
        hidden_channels: input feature size.
        output_hidden: width of the hidden layer (32 in the paper).
        activation: ``"shifted_softplus"`` (the paper) or ``"silu"``
            (:data:`~pyg_schnet.nn.activations.HEAD_ACTIVATIONS`).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, hidden_channels: int, output_hidden: int = 32, activation: str = "shifted_softplus") -> None:
        super().__init__()
        self.net = nn.Sequential(
            Dense(hidden_channels, output_hidden), head_activation(activation), Dense(output_hidden, 1)
        )
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    @property
    def hidden_layer(self) -> Dense:
        """The first dense layer of the network, ``net[0]``."""
        return cast(Dense, self.net[0])

    @property
    def output_layer(self) -> Dense:
        """The last dense layer (to one number per atom), ``net[2]``."""
        return cast(Dense, self.net[2])

    def reset_parameters(self) -> None:
        self.hidden_layer.reset_parameters()
        self.output_layer.reset_parameters()
