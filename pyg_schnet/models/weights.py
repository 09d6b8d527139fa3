"""The named weights of a SchNet (:class:`SchNetWeights`), exported by :meth:`pyg_schnet.SchNet.export_weights`
for code that evaluates the model without its modules (the MD evaluator, exporters to other engines).

The bundle holds detached copies: changing the model afterwards does not change an exported bundle.
Dense layers keep PyTorch's layout, ``y = x W^T + b`` with ``W`` ``[out, in]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class DenseWeights:
    """One atom-wise (dense) layer: ``weight`` ``[out, in]``, ``bias`` ``[out]``."""

    weight: Tensor
    bias: Tensor

    @staticmethod
    def of(layer: nn.Linear) -> "DenseWeights":
        if layer.bias is None:
            raise ValueError(f"{layer!r} has no bias; SchNet's dense layers all have one")
        return DenseWeights(layer.weight.detach().clone(), layer.bias.detach().clone())

    def to(self, dtype: torch.dtype) -> "DenseWeights":
        return DenseWeights(self.weight.to(dtype), self.bias.to(dtype))


@dataclass(frozen=True)
class BlockWeights:
    r"""One interaction block, :math:`\mathbf{x} \leftarrow \mathbf{x} + W_o\,\mathrm{ssp}(W_f\,
    \mathrm{cfconv}(W_{in}\mathbf{x}) + b_f) + b_o` with the filter network
    :math:`\mathrm{ssp}(W_2\,\mathrm{ssp}(W_1 \mathbf{e}(d) + b_1) + b_2)\, f_c(d)`."""

    in2filter: DenseWeights
    filter_first: DenseWeights
    filter_second: DenseWeights
    filter2out: DenseWeights
    out: DenseWeights

    def to(self, dtype: torch.dtype) -> "BlockWeights":
        return BlockWeights(
            *(
                getattr(self, name).to(dtype)
                for name in ("in2filter", "filter_first", "filter_second", "filter2out", "out")
            )
        )


@dataclass(frozen=True)
class SchNetWeights:
    r"""Everything a SchNet computes with, by name.

    Attributes:
        embedding: :math:`\mathbf{a}_Z` ``[max_z, F]``.
        centers: Gaussian centres :math:`\mu_k` ``[K]`` (Angstrom, float64).
        gamma: Gaussian width (Angstrom^-2); ``rbf_start`` / ``rbf_stop`` the first and last centre.
        cutoff: cosine-cutoff radius (Angstrom) or ``None`` (all pairs, no cutoff function).
        blocks: the interaction blocks in order.
        head_hidden, head_out: the output network :math:`y = W_2\,\mathrm{ssp}(W_1\mathbf{x} + b_1) + b_2`.
        mean, std, atomref: the standardisation :math:`E_i = \sigma y_i + \mu + E^{ref}_{Z_i}` (energy unit).
        filter_activation: a shifted softplus after each filter network's second layer (the paper);
            ``False``: a linear second layer (:class:`~pyg_schnet.nn.FilterNetwork`).
    """

    embedding: Tensor
    centers: Tensor
    gamma: float
    rbf_start: float
    rbf_stop: float
    cutoff: Optional[float]
    blocks: Tuple[BlockWeights, ...]
    head_hidden: DenseWeights
    head_out: DenseWeights
    mean: float
    std: float
    atomref: Tensor
    filter_activation: bool = True

    @property
    def num_gaussians(self) -> int:
        return int(self.centers.numel())

    def to(self, dtype: torch.dtype) -> "SchNetWeights":
        """A copy in ``dtype`` (the centres stay float64, as in :class:`~pyg_schnet.nn.GaussianRBF`)."""
        return SchNetWeights(
            self.embedding.to(dtype),
            self.centers,
            self.gamma,
            self.rbf_start,
            self.rbf_stop,
            self.cutoff,
            tuple(b.to(dtype) for b in self.blocks),
            self.head_hidden.to(dtype),
            self.head_out.to(dtype),
            self.mean,
            self.std,
            self.atomref.to(dtype),
            self.filter_activation,
        )
