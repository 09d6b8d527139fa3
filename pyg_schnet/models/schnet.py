"""SchNet: representation, energy head and forces as the negative gradient of the energy."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from torch import Tensor, nn

from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.graph.periodic import check_cell_and_pbc
from pyg_schnet.models.config import PAPER_CONFIG, SchNetConfig, resolve_config  # noqa: F401  (PAPER_CONFIG: 0.2 name)
from pyg_schnet.models.dense import dense_energy, dense_energy_and_forces
from pyg_schnet.models.domain import TrainingDomain
from pyg_schnet.models.representation import SchNetRepresentation
from pyg_schnet.models.response import energy_and_forces, energy_forces_stress
from pyg_schnet.models.weights import BlockWeights, DenseWeights, SchNetWeights
from pyg_schnet.nn import AtomwiseEnergy
from pyg_schnet.validation import check_inputs, check_standardization, prepare_inputs


class SchNet(nn.Module):
    r"""SchNet (Schütt et al., NeurIPS 2017) for molecular energies and energy-conserving forces.

    .. math::
        \hat E = \sum_i \left(\sigma\, y_i(\mathbf{x}^L_i) + \mu + E^{\text{ref}}_{Z_i}\right), \qquad
        \hat{\mathbf{F}}_i = -\frac{\partial \hat E}{\partial \mathbf{r}_i}

    with :math:`\mathbf{x}^L` from :class:`SchNetRepresentation` and the head
    :class:`~pyg_schnet.nn.AtomwiseEnergy`. Energies come out in the unit of the training targets
    (our benchmarks use kcal/mol), positions go in in Angstrom, forces in energy unit per Angstrom.

    Args:
        config: a :class:`~pyg_schnet.models.config.SchNetConfig` (default: the paper's).
        **options: fields of :class:`~pyg_schnet.models.config.SchNetConfig` that replace those of
            ``config``, e.g. ``SchNet(cutoff=5.0)``.

    Attributes:
        config: the constructor options as a dict (what ``model.pt`` stores); ``settings`` the
            frozen :class:`~pyg_schnet.models.config.SchNetConfig`.
    """

    #: Units of the model's numbers, ``{"energy": name, "length": "Angstrom"}``: set by the trainer
    #: (from the data), by :func:`pyg_schnet.load_model` (from the file) or by the user; saving or
    #: converting a model without them is refused (:func:`pyg_schnet.io.units.model_units`).
    units: Optional[Dict[str, str]] = None
    #: What the model was trained on (elements, sizes, energy range): set by the trainer (from its
    #: training set) and by :func:`pyg_schnet.load_model` (from the file); ``None``: unknown (a model
    #: file of format /1 or /2, or a model not trained by the trainer). See :mod:`pyg_schnet.models.domain`.
    training_domain: Optional[TrainingDomain] = None

    def __init__(self, config: Optional[SchNetConfig] = None, **options: Any) -> None:
        super().__init__()
        settings = resolve_config(config, options)
        self.settings: SchNetConfig = settings
        self.config: Dict[str, Any] = settings.as_dict()
        self.max_z = settings.max_z
        self.representation = SchNetRepresentation(settings)
        self.head = AtomwiseEnergy(settings.hidden_channels, settings.output_hidden, settings.max_z)

    @classmethod
    def from_paper(cls, **overrides: Any) -> "SchNet":
        """The paper's configuration (:class:`~pyg_schnet.models.config.SchNetConfig` defaults), with
        optional overrides."""
        return cls(SchNetConfig.from_dict(overrides))

    def reset_parameters(self) -> None:
        self.representation.reset_parameters()
        self.head.reset_parameters()

    def set_standardization(self, mean: float, std: float, atomref: Optional[Tensor] = None) -> None:
        """Per-atom energy mean and std of the training targets, and optional atomrefs ``[max_z]``."""
        check_standardization(mean, std, atomref)
        self.head.set_standardization(mean, std, atomref)

    @property
    def mean(self) -> Tensor:
        return self.head.mean

    @property
    def std(self) -> Tensor:
        return self.head.std

    @property
    def atomref(self) -> Tensor:
        return self.head.atomref

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        *,
        layout: Optional[HostLayout] = None,
    ) -> Tensor:
        """Total energy per structure ``[num_graphs]``.

        Args:
            z: atomic numbers ``[N]``.
            pos: positions ``[N, 3]`` in Angstrom (converted to the model's dtype, differentiably).
            batch: sorted structure index of each atom ``[N]`` (``None``: one structure).
            cell: lattice vectors as rows ``[G, 3, 3]`` in Angstrom (``None``: no periodicity;
                converted to the model's dtype).
            pbc: periodic axes ``[G, 3]`` bool; structures with all ``False`` are molecules (their
                cell is ignored), so a batch can mix periodic and molecular structures. A periodic
                structure interacts with every image within the cutoff and needs a finite cutoff.
            layout: the sizes of the batch known on the host
                (:class:`~pyg_schnet.graph.pairs.HostLayout`, e.g. ``HostLayout.of_batch(batch)`` of a PyG
                batch): with it nothing is read from the device to size the graph, the energies or the
                Gaussian window (no host synchronisation on an accelerator; see
                :func:`pyg_schnet.validation.trusted_inputs` for the input checks). Same results.
        """
        if layout is not None:
            layout.check_atoms(z.size(0) if isinstance(z, Tensor) and z.dim() else -1)
        z, pos, batch = prepare_inputs(z, pos, batch, self.max_z, self.head.mean.dtype)
        if layout is not None:
            num_graphs = layout.num_graphs
        else:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        cell, pbc = self._check_periodic(cell, pbc, num_graphs, pos)
        if layout is None:  # a replaced representation may not know the keyword
            x = self.representation(z, pos, batch, cell, pbc)
        else:
            x = self.representation(z, pos, batch, cell, pbc, layout=layout)
        return self.head(x, z, batch, num_graphs)

    def _check_periodic(
        self, cell: Optional[Tensor], pbc: Optional[Tensor], num_graphs: int, pos: Tensor
    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        cell, pbc = check_cell_and_pbc(cell, pbc, num_graphs, pos)
        if pbc is not None and self.representation.cutoff is None:
            g = int(pbc.any(dim=1).nonzero()[0])
            raise ValueError(
                f"structure {g} is periodic (pbc {pbc[g].tolist()}) but this SchNet has cutoff=None (all pairs): "
                "a periodic structure has infinitely many pairs. Build the model with a finite cutoff, "
                "e.g. SchNet(cutoff=5.0)"
            )
        return cell, pbc

    def energy_and_forces(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        *,
        layout: Optional[HostLayout] = None,
    ) -> Tuple[Tensor, Tensor]:
        r"""Energies ``[num_graphs]`` and forces :math:`-\partial E / \partial \mathbf{r}` ``[N, 3]``.

        ``cell`` / ``pbc`` / ``layout`` as in :meth:`forward`. In training mode the forces keep their
        graph (``create_graph=True``), so a loss on them can be back-propagated to the weights (double
        backward). In eval mode both results are detached.
        """
        if layout is None:  # a subclass's forward may not know the keyword
            return energy_and_forces(lambda p: self(z, p, batch, cell, pbc), pos, self.training)
        return energy_and_forces(lambda p: self(z, p, batch, cell, pbc, layout=layout), pos, self.training)

    def energy_forces_stress(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        r"""Energies ``[G]``, forces ``[N, 3]`` and stress ``[G, 3, 3]`` of periodic structures.

        .. math::
            \sigma = \frac{1}{V} \left.\frac{\partial E}{\partial \varepsilon}\right|_{\varepsilon = 0},
            \qquad \mathbf{r} \to \mathbf{r}(1 + \varepsilon),\; C \to C (1 + \varepsilon)

        for a symmetric strain :math:`\varepsilon` applied to positions and cell (row vectors),
        :math:`V = |\det C|`: energy unit per Angstrom^3, ASE's sign (positive = the structure
        wants to contract, i.e. is under tension). Every structure must be periodic along some axis,
        with a non-zero volume (else :class:`ValueError`). ``create_graph`` in training mode, as in
        :meth:`energy_and_forces`.
        """
        batch = check_inputs(z, pos, batch, self.max_z)
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        checked_cell, checked_pbc = self._check_periodic(cell, pbc, num_graphs, pos)
        if checked_cell is None or checked_pbc is None:
            raise ValueError(
                "stress needs periodic structures: pass cell [num_graphs, 3, 3] and pbc [num_graphs, 3] "
                "with a periodic axis (no structure of this batch is periodic)"
            )
        return energy_forces_stress(
            lambda p, c: self(z, p, batch, c, checked_pbc), pos, checked_cell, checked_pbc, batch, self.training
        )

    def export_weights(self) -> SchNetWeights:
        """The weights by name (:class:`~pyg_schnet.models.weights.SchNetWeights`), detached copies.

        Reads the paper's module layout (embedding, Gaussians, per block ``in2filter`` / ``conv`` with
        its two-layer filter network and optional cosine cutoff / ``filter2out`` / ``out``, the head's
        ``net[0]`` and ``net[2]``); whether a model still *computes* what these weights say (no module
        replaced or subclassed) is :func:`pyg_schnet.models.md_evaluator.supports`.
        """
        rep = self.representation
        blocks = tuple(
            BlockWeights(
                DenseWeights.of(b.in2filter),
                DenseWeights.of(b.conv.filter_network.first),
                DenseWeights.of(b.conv.filter_network.second),
                DenseWeights.of(b.filter2out),
                DenseWeights.of(b.out),
            )
            for b in rep.blocks
        )
        head = self.head
        return SchNetWeights(
            embedding=rep.embedding.weight.detach().clone(),
            centers=rep.rbf.centers.detach().clone(),
            gamma=rep.rbf.gamma,
            rbf_start=rep.rbf.start,
            rbf_stop=rep.rbf.stop,
            cutoff=rep.cutoff,
            blocks=blocks,
            head_hidden=DenseWeights.of(head.hidden_layer),
            head_out=DenseWeights.of(head.output_layer),
            mean=float(head.mean),
            std=float(head.std),
            atomref=head.atomref.detach().clone(),
            filter_activation=self.settings.filter_activation,
        )

    def extra_repr(self) -> str:
        return ", ".join(
            f"{k}={v}" for k, v in self.config.items() if k in ("hidden_channels", "num_interactions", "cutoff")
        )

    def forward_dense(
        self, z: Tensor, pos: Tensor, mask: Tensor, *, distance_range: Optional[Tuple[float, float]] = None
    ) -> Tensor:
        """Total energy per molecule ``[B]`` of a dense (padded) batch, with the same parameters.

        Args:
            z: atomic numbers ``[B, N_max]`` (ignored on padding).
            pos: positions ``[B, N_max, 3]`` in Angstrom (ignored on padding).
            mask: ``[B, N_max]`` bool, ``True`` on real atoms. See :func:`pyg_schnet.batching.to_dense`.
            distance_range: ``(d_min, d_max)`` of the real pairs' distances when known on the host
                (:meth:`pyg_schnet.graph.pairs.HostLayout.window_range`): the Gaussian window then
                reads nothing from the device.
        """
        return dense_energy(self, z, pos, mask, distance_range)

    def energy_and_forces_dense(
        self, z: Tensor, pos: Tensor, mask: Tensor, *, distance_range: Optional[Tuple[float, float]] = None
    ) -> Tuple[Tensor, Tensor]:
        r"""Energies ``[B]`` and forces ``[B, N_max, 3]`` (zero on padding) of a dense batch.

        Same conventions as :meth:`energy_and_forces`: ``create_graph`` in training mode, detached
        results in eval mode; ``distance_range`` as in :meth:`forward_dense`.
        """
        return dense_energy_and_forces(self, z, pos, mask, distance_range)
