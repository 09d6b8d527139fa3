"""The continuous-filter convolution (cfconv) as a PyG message-passing layer."""

from __future__ import annotations

from typing import Any, Optional, cast

import torch
from torch import Tensor, nn
from torch_geometric.nn.conv import MessagePassing

from pyg_schnet import backend
from pyg_schnet.nn.activations import ShiftedSoftplus
from pyg_schnet.nn.cutoff import CosineCutoff
from pyg_schnet.nn.dense import Dense


class FilterNetwork(nn.Sequential):
    r"""Filter-generating network :math:`W(d_{ij})` of the paper (Fig. 2, right): the Gaussian
    expansion of a distance goes through two dense layers, each followed by a shifted softplus:

    .. math::
        W(d) = \mathrm{ssp}\big(W_2\, \mathrm{ssp}(W_1 \mathbf{e}(d) + b_1) + b_2\big)

    With ``last_activation=False`` the second layer is linear,
    :math:`W(d) = W_2\, \mathrm{ssp}(W_1 \mathbf{e}(d) + b_1) + b_2`: PyG's and SchNetPack's SchNet
    (models converted from them, :mod:`pyg_schnet.models.convert`).

    Args:
        num_gaussians: size :math:`K` of the distance expansion.
        num_filters: filter width :math:`F`.
        last_activation: a shifted softplus after the second layer (the paper).

    Shapes:
        - **input:** expanded distances :math:`(E, K)`
        - **output:** filters :math:`(E, F)`
    """

    def __init__(self, num_gaussians: int, num_filters: int, last_activation: bool = True) -> None:
        layers = [Dense(num_gaussians, num_filters), ShiftedSoftplus(), Dense(num_filters, num_filters)]
        super().__init__(*layers, *([ShiftedSoftplus()] if last_activation else []))

    @property
    def last_activation(self) -> bool:
        """Whether a shifted softplus follows the second layer (the paper's filter network)."""
        return len(self) == 4

    @property
    def first(self) -> Dense:
        """The first dense layer (Gaussians -> filters), ``self[0]``."""
        return cast(Dense, self[0])

    @property
    def second(self) -> Dense:
        """The second dense layer (filters -> filters), ``self[2]``."""
        return cast(Dense, self[2])

    def reset_parameters(self) -> None:
        self.first.reset_parameters()
        self.second.reset_parameters()


#: The hook dicts every :class:`torch.nn.Module` has (``_forward_hooks``, ...): not PyG's.
_MODULE_HOOKS = frozenset(name for name in vars(nn.Module()) if name.endswith("_hooks"))


class CFConv(MessagePassing):
    r"""Continuous-filter convolution of SchNet (paper, Eq. 2), with an optional cosine cutoff:

    .. math::
        \mathbf{x}_i' = \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j \circ W(d_{ij})\, f_c(d_{ij})

    where :math:`\circ` is the element-wise product, :math:`W` the :class:`FilterNetwork` applied to
    the Gaussian expansion of :math:`d_{ij}`, and :math:`f_c` the :class:`CosineCutoff` (taken as 1
    when ``cutoff`` is ``None``, the paper's setting). Messages are summed by scatter-add
    (``torch_scatter``; plain PyTorch when it is not installed).

    Args:
        channels: number of feature maps :math:`F` of ``x`` (and of the filters).
        num_gaussians: size :math:`K` of the distance expansion given as ``edge_attr``.
        cutoff: radius of the cosine cutoff in Angstrom, or ``None`` for no cutoff.
        filter_activation: the :class:`FilterNetwork`'s ``last_activation`` (the paper: ``True``).
        **kwargs: further arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices :math:`(2, |\mathcal{E}|)`
          (row 0 source :math:`j`, row 1 target :math:`i`), distances ``edge_weight``
          :math:`(|\mathcal{E}|)` in Angstrom, their expansion ``edge_attr`` :math:`(|\mathcal{E}|, K)`
        - **output:** node features :math:`(|\mathcal{V}|, F)`
    """

    filter_network: FilterNetwork
    cutoff: Optional[CosineCutoff]

    def __init__(
        self,
        channels: int,
        num_gaussians: int,
        cutoff: Optional[float] = None,
        filter_activation: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.channels = channels
        self.num_gaussians = num_gaussians
        self.filter_network = FilterNetwork(num_gaussians, channels, filter_activation)
        self.cutoff = CosineCutoff(cutoff) if cutoff is not None else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.filter_network.reset_parameters()

    def filters(self, edge_weight: Tensor, edge_attr: Tensor) -> Tensor:
        r"""Filter values :math:`W(d_{ij}) f_c(d_{ij})` for each edge (or any leading shape)."""
        W = self.filter_network(edge_attr)
        if self.cutoff is not None:
            W = W * self.cutoff(edge_weight).unsqueeze(-1)
        return W

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_attr: Optional[Tensor],
        mirrored: bool = False,
        filters: Optional[Tensor] = None,
    ) -> Tensor:
        """Convolve ``x`` over ``edge_index``.

        With ``mirrored=True``, ``edge_index`` holds each pair twice, its second half being its first
        half reversed (:func:`pyg_schnet.graph.mirror`), and ``edge_weight`` / ``edge_attr`` are given
        for the first half only: the filters, symmetric in ``i`` and ``j``, are computed once per pair.
        ``filters`` are precomputed values of :meth:`filters` (see :mod:`pyg_schnet.nn.fused`); then
        ``edge_attr`` is not read.
        """
        if filters is not None and mirrored and self.is_plain():
            return self._mirrored_message_passing(x, edge_index, filters)
        if filters is None:
            if edge_attr is None:
                raise ValueError("CFConv needs edge_attr (the expanded distances [E, K]) or precomputed filters")
            W = self.filters(edge_weight, edge_attr)
        else:
            W = filters
        if mirrored:
            W = torch.cat([W, W], dim=0)
        return self.propagate(edge_index, x=x, W=W)

    def is_plain(self) -> bool:
        """No PyG hook (any of :class:`~torch_geometric.nn.conv.MessagePassing`'s ``*_hooks`` dicts:
        propagate, message, aggregate, message_and_aggregate, edge_update), explanation or layer
        decomposition asks for :meth:`propagate`'s machinery, so the mirrored fast path computes what
        :meth:`propagate` would. The module's own forward hooks run either way (they wrap ``__call__``)."""
        hooks = [value for name, value in vars(self).items() if name.endswith("_hooks") and name not in _MODULE_HOOKS]
        return not any(hooks) and not self.explain and self.decomposed_layers == 1

    def _mirrored_message_passing(self, x: Tensor, edge_index: Tensor, W: Tensor) -> Tensor:
        r""":meth:`propagate` for a mirrored graph, with the same :meth:`message` and :meth:`aggregate`
        but without the generic argument collection: :math:`\mathbf{x}_j` is gathered once for all
        ``2P`` edges and each pair's filter ``W`` ``[P, F]`` is broadcast over its two directions
        (no concatenated copy ``[2P, F]``)."""
        num_pairs = W.size(0)
        x_j = x.index_select(0, edge_index[0]).view(2, num_pairs, x.size(1))
        messages = self.message(x_j, W).view(2 * num_pairs, x.size(1))
        return self.aggregate(messages, edge_index[1], dim_size=x.size(0))

    def message(self, x_j: Tensor, W: Tensor) -> Tensor:
        return x_j * W

    def aggregate(
        self, inputs: Tensor, index: Tensor, ptr: Optional[Tensor] = None, dim_size: Optional[int] = None
    ) -> Tensor:
        if dim_size is None:
            dim_size = int(index.max()) + 1 if index.numel() else 0
        return backend.scatter_add(inputs, index, dim_size)

    def __repr__(self) -> str:
        cutoff = None if self.cutoff is None else self.cutoff.cutoff
        return f"{self.__class__.__name__}({self.channels}, num_gaussians={self.num_gaussians}, cutoff={cutoff})"
