r"""Dipole head: latent atomic charges constrained to the total charge, their dipole and its norm.

Schütt et al., J. Chem. Phys. 148, 241722 (2018), section II.C: an atom-wise network predicts a
latent charge :math:`\tilde q_i` per atom; the charges are shifted so that they sum to the structure's
total charge :math:`Q` (0 for a neutral molecule), and the dipole moment is

.. math::
    q_i = \tilde q_i - \frac{1}{N}\Big(\sum_{j} \tilde q_j - Q\Big), \qquad
    \boldsymbol\mu = \sum_i q_i \left(\mathbf r_i - \mathbf r_c\right), \qquad
    \mathbf r_c = \frac{1}{N} \sum_i \mathbf r_i

over the :math:`N` atoms of the structure. With positions in Angstrom and charges in units of the
elementary charge :math:`e`, :math:`\boldsymbol\mu` is in e*Angstrom (ASE's dipole unit; 1 Debye =
``ase.units.Debye`` = 0.20819 e*Angstrom). For a neutral structure the reference point drops out
(:math:`\sum_i q_i = 0`), so :math:`\boldsymbol\mu` is translation invariant; for a charged one the
dipole depends on it, and the centre of geometry :math:`\mathbf r_c` is the convention used here. About
:math:`\mathbf r_c` a uniform shift of all charges has no moment (:math:`\sum_i (\mathbf r_i - \mathbf
r_c) = 0`), so :math:`\boldsymbol\mu` does not depend on :math:`Q`: the total charge fixes the atomic
charges :math:`q_i` (:meth:`DipoleMoment.charges`), and the dipole of a neutral molecule equals
:math:`\sum_i q_i \mathbf r_i` about any origin, as in the paper.
Rotating the structure rotates :math:`\boldsymbol\mu` (the charges are invariant).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.nn.atomwise import AtomwiseHead


class DipoleMoment(AtomwiseHead):
    r"""Latent-charge dipole head (module docstring):
    :math:`\tilde q_i = \sigma\,(W_2\,\mathrm{ssp}(W_1 \mathbf x_i + b_1) + b_2)`.

    :math:`\sigma` (``std``, a buffer, in e) scales the network's order-one outputs to charges. The
    ``mean`` buffer is always 0 (a constant charge per atom is removed by the total-charge constraint);
    it is there so that every head of :mod:`pyg_schnet.nn` has ``mean`` and ``std``.

    Args:
        hidden_channels: input feature size.
        output_hidden: width of the hidden atom-wise layer (32 as the energy head).
        magnitude: ``forward`` returns :math:`|\boldsymbol\mu|` ``[G]`` (``True``; the QM9 target
            ``mu``) or the vector :math:`\boldsymbol\mu` ``[G, 3]`` (``False``).
        activation: the hidden layer's activation (:class:`~pyg_schnet.nn.AtomwiseEnergy`).
    """

    def __init__(
        self,
        hidden_channels: int,
        output_hidden: int = 32,
        magnitude: bool = True,
        activation: str = "shifted_softplus",
    ) -> None:
        super().__init__(hidden_channels, output_hidden, activation)
        self.magnitude = bool(magnitude)

    @torch.no_grad()
    def set_standardization(self, mean: float, std: float, atomref: Optional[Tensor] = None) -> None:
        """Set the charge scale :math:`\\sigma` (``std``, in e). ``mean`` must be 0 and ``atomref``
        ``None``: a dipole head has neither (a charge offset cancels in the total-charge constraint)."""
        if atomref is not None:
            raise ValueError(
                "a dipole head takes no atom references (atomref): its atom-wise outputs are charges "
                "constrained to the total charge; pass atomref=None"
            )
        if float(mean) != 0.0:
            raise ValueError(
                f"a dipole head has no mean (got mean={float(mean)}): a constant charge per atom is removed by "
                "the total-charge constraint; pass mean=0 and the charge scale (e) as std"
            )
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.std.fill_(float(std))

    def charges(self, x: Tensor, batch: Tensor, num_graphs: int, charge: Optional[Tensor] = None) -> Tensor:
        """Atomic charges :math:`q_i` ``[N]`` (e) that sum to each structure's ``charge`` ``[G]``
        (``None``: 0, neutral)."""
        q = self.std * self.net(x).squeeze(-1)
        total = backend.scatter_add(q, batch, num_graphs)
        count = backend.scatter_add(torch.ones_like(q), batch, num_graphs)
        target = q.new_zeros(num_graphs) if charge is None else charge.reshape(-1).to(q.dtype)
        if target.numel() != num_graphs:
            raise ValueError(
                f"charge must hold one total charge per structure ({num_graphs}), got {target.numel()} values"
            )
        return q - ((total - target) / count)[batch]

    def dipole(self, x: Tensor, pos: Tensor, batch: Tensor, num_graphs: int, charge: Optional[Tensor] = None) -> Tensor:
        r"""Dipole vectors :math:`\boldsymbol\mu` ``[G, 3]`` (e*Angstrom) for ``pos`` ``[N, 3]`` in Angstrom."""
        q = self.charges(x, batch, num_graphs, charge)
        count = backend.scatter_add(torch.ones_like(q), batch, num_graphs)
        centre = backend.scatter_add(pos, batch, num_graphs) / count.unsqueeze(-1)
        return backend.scatter_add(q.unsqueeze(-1) * (pos - centre[batch]), batch, num_graphs)

    def forward(
        self, x: Tensor, pos: Tensor, batch: Tensor, num_graphs: int, charge: Optional[Tensor] = None
    ) -> Tensor:
        mu = self.dipole(x, pos, batch, num_graphs, charge)
        return torch.linalg.vector_norm(mu, dim=-1) if self.magnitude else mu
