"""Atom-wise scalar heads: per-atom contributions, standardisation, reference energies, and their sum
(:class:`AtomwiseEnergy`, extensive) or mean (:class:`AtomwiseIntensive`, intensive)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.nn.atomwise import AtomwiseHead


class AtomwiseEnergy(AtomwiseHead):
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
        activation: the hidden layer's activation, ``"shifted_softplus"`` (the paper's ssp above) or
            ``"silu"`` (SchNetPack 2's default head; models converted from it).
    """

    atomref: Tensor

    def __init__(
        self, hidden_channels: int, output_hidden: int = 32, max_z: int = 100, activation: str = "shifted_softplus"
    ) -> None:
        super().__init__(hidden_channels, output_hidden, activation)
        self.register_buffer("atomref", torch.zeros(max_z))

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


class AtomwiseIntensive(AtomwiseEnergy):
    r"""Head of an intensive property (HOMO, LUMO, gap): the same atom-wise network as
    :class:`AtomwiseEnergy`, averaged instead of summed over the structure's :math:`n` atoms:

    .. math::
        y = \frac{1}{n} \sum_{i \in \text{structure}} \left(\sigma\, y_i + \mu\right)
          = \sigma\, \bar y + \mu

    so a structure and two far-apart copies of it (beyond the cutoff) get the same value. :math:`\mu`
    and :math:`\sigma` are the mean and standard deviation of the training targets *per structure*
    (not per atom). Atom references have no meaning for a mean (they would add the mean reference of the
    structure's elements, not a per-element offset of a sum), so :meth:`set_standardization` refuses
    them; the ``atomref`` buffer stays zero (kept so that the state dict has the layout of the energy
    head).
    """

    @torch.no_grad()
    def set_standardization(self, mean: float, std: float, atomref: Optional[Tensor] = None) -> None:
        """Set :math:`\\mu`, :math:`\\sigma` (per structure); ``atomref`` must be ``None``."""
        if atomref is not None:
            raise ValueError(
                "an intensive head (output='intensive': the mean of atom contributions, e.g. HOMO/LUMO/gap) "
                "takes no atom references (atomref): they are per-element offsets of a sum (extensive "
                "targets such as U0); pass atomref=None and the per-structure mean and std of the targets"
            )
        super().set_standardization(mean, std, None)

    def forward(self, x: Tensor, z: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        values = self.atom_energies(x, z)
        total = backend.scatter_add(values, batch, num_graphs)
        count = backend.scatter_add(torch.ones_like(values), batch, num_graphs)
        return total / count
