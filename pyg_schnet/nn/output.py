"""Atom-wise energy head: per-atom energies, standardisation, reference energies, sum."""

from __future__ import annotations

from typing import Optional, cast

import torch
from torch import Tensor, nn

from pyg_schnet import backend
from pyg_schnet.nn.activations import ShiftedSoftplus
from pyg_schnet.nn.dense import Dense


class AtomwiseEnergy(nn.Module):
    r"""Output head of SchNet (paper, Fig. 2 left): an atom-wise network maps each atom's features
    to a scalar :math:`y_i`, which is de-standardised and summed per molecule:

    .. math::
        E = \sum_{i \in \text{molecule}} \left(\sigma\, y_i + \mu + E^{\text{ref}}_{Z_i}\right),
        \qquad y_i = W_2\, \mathrm{ssp}(W_1 \mathbf{x}_i + b_1) + b_2

    :math:`\mu` and :math:`\sigma` are the per-atom mean and standard deviation of the training
    energies, :math:`E^{\text{ref}}_Z` optional per-element reference energies (atomrefs), all in the
    target's energy unit. They are buffers, so they travel with ``state_dict()``.

    Args:
        hidden_channels: input feature size.
        output_hidden: width of the hidden atom-wise layer (32 in the paper).
        max_z: size of the atomref table (atomic numbers ``0 .. max_z - 1``).
    """

    mean: Tensor
    std: Tensor
    atomref: Tensor

    def __init__(self, hidden_channels: int, output_hidden: int = 32, max_z: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(Dense(hidden_channels, output_hidden), ShiftedSoftplus(), Dense(output_hidden, 1))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("atomref", torch.zeros(max_z))

    @property
    def hidden_layer(self) -> Dense:
        """The first dense layer of the output network, ``net[0]``."""
        return cast(Dense, self.net[0])

    @property
    def output_layer(self) -> Dense:
        """The last dense layer of the output network (to one number per atom), ``net[2]``."""
        return cast(Dense, self.net[2])

    def reset_parameters(self) -> None:
        self.hidden_layer.reset_parameters()
        self.output_layer.reset_parameters()

    @torch.no_grad()
    def set_standardization(self, mean: float, std: float, atomref: Optional[Tensor] = None) -> None:
        """Set :math:`\\mu`, :math:`\\sigma` (per atom) and optionally the atomref table ``[max_z]``."""
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean.fill_(float(mean))
        self.std.fill_(float(std))
        if atomref is not None:
            atomref = torch.as_tensor(atomref, dtype=self.atomref.dtype).flatten()
            if atomref.numel() > self.atomref.numel():
                raise ValueError(
                    f"atomref has {atomref.numel()} entries, the model knows {self.atomref.numel()} elements"
                )
            self.atomref.zero_()
            self.atomref[: atomref.numel()] = atomref.to(self.atomref.device)

    def atom_energies(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-atom energy contributions ``[N]`` in the target's unit."""
        y = self.net(x).squeeze(-1)
        return self.std * y + self.mean + self.atomref[z]

    def forward(self, x: Tensor, z: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        return backend.scatter_add(self.atom_energies(x, z), batch, num_graphs)
