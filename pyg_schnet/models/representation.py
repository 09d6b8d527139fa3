"""SchNet's representation: embedding, interaction graph, Gaussian expansion, interaction blocks."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple, cast

import torch
from torch import Tensor, nn

from pyg_schnet import backend
from pyg_schnet.graph import build_pairs, build_periodic_pairs, check_all_pairs_memory, edge_distances, mirror
from pyg_schnet.graph.memory import check_periodic_memory
from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.graph.periodic import check_distinct_images
from pyg_schnet.models.config import SchNetConfig, resolve_config
from pyg_schnet.nn import CFConv, GaussianRBF, InteractionBlock, fused
from pyg_schnet.validation import check_distinct_positions


class Graph(NamedTuple):
    """The interaction graph of a batch.

    ``edge_index`` ``[2, 2P]`` holds every interacting pair in both directions, the second half being
    the first reversed; ``edge_weight`` (distances, Angstrom) ``[P]`` and ``edge_attr`` (their
    Gaussian expansion) ``[P, K]`` are given once per pair (see ``CFConv(..., mirrored=True)``).
    ``distance_range``: bounds (Angstrom) of the distances whose filters matter, known on the host
    (from a :class:`~pyg_schnet.graph.pairs.HostLayout`), else ``None`` (the fast filters then read the
    range from the device).
    """

    edge_index: Tensor
    edge_weight: Tensor
    edge_attr: Optional[Tensor]
    distance_range: Optional[Tuple[float, float]] = None


class SchNetRepresentation(nn.Module):
    r"""Atom-wise representation of SchNet (paper, section 4.1):

    .. math::
        \mathbf{x}^0_i = \mathbf{a}_{Z_i}, \qquad
        \mathbf{x}^{l+1} = \mathrm{Interaction}_l(\mathbf{x}^l, \{d_{ij}\})

    positions -> graph (:func:`pyg_schnet.graph.build_graph`) -> distances -> Gaussian expansion ->
    ``num_interactions`` :class:`~pyg_schnet.nn.InteractionBlock` (no weight sharing).

    Args:
        config: the model's :class:`~pyg_schnet.models.config.SchNetConfig` (its ``output_hidden`` is the
            head's and not used here); ``**options`` replace its fields.

    Attributes:
        fast_filters: ``None`` follows :data:`pyg_schnet.backend.FAST_FILTERS`; ``True`` / ``False``
            fixes this model's choice (the fused filters of :mod:`pyg_schnet.nn.fused` or the plain
            modules). Not saved with the model.
        max_graph_bytes: ``None`` follows :data:`pyg_schnet.backend.MAX_GRAPH_BYTES`; a number of bytes
            sets this model's all-pairs graph limit. Not saved with the model.
    """

    def __init__(self, config: Optional[SchNetConfig] = None, **options: Any) -> None:
        super().__init__()
        settings = resolve_config(config, options)
        self.cutoff = settings.cutoff
        self.max_num_neighbors = settings.max_num_neighbors
        self.fast_filters: Optional[bool] = None
        self.max_graph_bytes: Optional[int] = None
        self.embedding = nn.Embedding(settings.max_z, settings.hidden_channels)
        self.rbf = GaussianRBF(
            settings.rbf_start,
            settings.rbf_stop,
            settings.num_gaussians,
            settings.gamma,
            getattr(torch, settings.rbf_linspace_dtype),
        )
        self.interactions = nn.ModuleList(
            InteractionBlock(
                settings.hidden_channels,
                settings.num_gaussians,
                settings.num_filters,
                settings.cutoff,
                settings.filter_activation,
            )
            for _ in range(settings.num_interactions)
        )
        self.reset_parameters()

    @property
    def blocks(self) -> List[InteractionBlock]:
        """The interaction blocks in order (``interactions`` with their type)."""
        return [cast(InteractionBlock, block) for block in self.interactions]

    @property
    def convs(self) -> List[CFConv]:
        """The cfconv layer of every interaction block."""
        return [block.conv for block in self.blocks]

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=1.0)
        for block in self.blocks:
            block.reset_parameters()

    def graph(
        self,
        pos: Tensor,
        batch: Tensor,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        expand: bool = True,
        layout: Optional[HostLayout] = None,
    ) -> Graph:
        """Build the interaction graph, check that no two atoms coincide, expand the distances
        (unless ``expand=False``: the fast path expands them itself, see :meth:`interact`).

        ``cell`` ``[G, 3, 3]`` and ``pbc`` ``[G, 3]`` (validated, see
        :func:`pyg_schnet.graph.periodic.check_cell_and_pbc`) make the graph periodic: pairs with every
        image within the cutoff, distances differentiable in ``pos`` and ``cell``. ``cell=None``
        is the molecular path. With ``cutoff=None`` the memory of the all-pairs graph is estimated
        first (:func:`pyg_schnet.graph.check_all_pairs_memory`).

        ``layout``: the batch's sizes (and distance range) known on the host
        (:class:`~pyg_schnet.graph.pairs.HostLayout`): the molecular graph is then built without reading
        the device (:func:`pyg_schnet.graph.build_pairs`), and so is the Gaussian window. Ignored for
        periodic structures.
        """
        estimate: Dict[str, Any] = dict(  # of the graph's memory, before it is built
            num_gaussians=self.rbf.num_gaussians,
            num_filters=self.blocks[0].conv.channels if len(self.interactions) else 0,
            num_interactions=len(self.interactions),
            dtype=pos.dtype,
            with_grad=torch.is_grad_enabled(),
            limit=self.max_graph_bytes,
        )
        if cell is not None and pbc is not None:
            if self.cutoff is not None:  # build_periodic_pairs refuses cutoff=None itself
                check_periodic_memory(batch, cell, pbc, float(self.cutoff), **estimate)
            pairs, shifts = build_periodic_pairs(pos, batch, cell, pbc, self.cutoff, self.max_num_neighbors)
            distances = edge_distances(pos, pairs, shifts, cell, batch)
            check_distinct_images(distances, pairs, shifts, batch)
            layout = None
        else:
            if self.cutoff is None:
                if layout is not None:
                    layout.check_all_pairs_memory(**estimate)
                else:
                    check_all_pairs_memory(batch, **estimate)
            pairs = build_pairs(pos, batch, self.cutoff, self.max_num_neighbors, layout)
            distances = edge_distances(pos, pairs)
            check_distinct_positions(distances, pairs, batch)
        distance_range = layout.window_range(self.cutoff) if layout is not None else None
        return Graph(mirror(pairs), distances, self.rbf(distances) if expand else None, distance_range)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        layout: Optional[HostLayout] = None,
    ) -> Tensor:
        """Atom features ``[N, hidden_channels]`` for atomic numbers ``z``, positions ``pos`` (Angstrom),
        optionally periodic (``cell`` ``[G, 3, 3]``, ``pbc`` ``[G, 3]``; see :meth:`graph`, also for
        ``layout``)."""
        fast = self.uses_fast_filters()
        g = self.graph(pos, batch, cell, pbc, expand=not fast, layout=layout)
        return self.interact(self.embedding(z), g, fast)

    def uses_fast_filters(self) -> bool:
        """Whether :meth:`forward` computes the filters on the fast path: switched on (this model's
        :attr:`fast_filters`, else the process default) and the modules are the plain ones
        (:func:`pyg_schnet.nn.fused.fusable`)."""
        return backend.fast_filters(self.fast_filters) and fused.fusable(self.rbf, self.convs)

    def interact(self, x: Tensor, g: Graph, fast: bool) -> Tensor:
        """Run the interaction blocks on embedded atoms ``x`` ``[N, F]`` over the graph ``g``.

        ``fast`` computes all blocks' filters at once (:func:`pyg_schnet.nn.fused.fused_filters`),
        else each block expands and filters on its own (the reference path).
        """
        if fast:
            filters = fused.fused_filters(self.rbf, self.convs, g.edge_weight, g.distance_range)
            for block, W in zip(self.blocks, filters):
                x = block(x, g.edge_index, g.edge_weight, None, mirrored=True, filters=W)
            return x
        edge_attr = g.edge_attr if g.edge_attr is not None else self.rbf(g.edge_weight)
        for block in self.blocks:
            x = block(x, g.edge_index, g.edge_weight, edge_attr, mirrored=True)
        return x
