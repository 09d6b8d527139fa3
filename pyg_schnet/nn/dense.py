"""Atom-wise dense layer with the initialisation used throughout SchNet."""

from __future__ import annotations

from torch import nn


class Dense(nn.Linear):
    r"""Atom-wise layer :math:`\mathbf{x}_i' = W \mathbf{x}_i + \mathbf{b}` (paper, section 4.1),
    applied to every atom with shared weights; Glorot-uniform weights and zero bias."""

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
