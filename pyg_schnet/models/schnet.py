"""SchNet: representation, output heads (energy, intensive, dipole), forces as the negative gradient of the energy."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union, cast

import torch
from torch import Tensor, nn

from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.graph.periodic import check_cell_and_pbc
from pyg_schnet.models.config import PAPER_CONFIG, SchNetConfig, resolve_config  # noqa: F401  (PAPER_CONFIG: 0.2 name)
from pyg_schnet.models.dense import dense_energy, dense_energy_and_forces
from pyg_schnet.models.domain import TrainingDomain
from pyg_schnet.models.representation import SchNetRepresentation
from pyg_schnet.models.response import check_autograd_available, energy_and_forces, energy_forces_stress
from pyg_schnet.models.weights import BlockWeights, DenseWeights, SchNetWeights
from pyg_schnet.nn import AtomwiseEnergy, AtomwiseIntensive, DipoleMoment
from pyg_schnet.validation import check_inputs, check_standardization, prepare_inputs

#: A head module: :class:`AtomwiseEnergy` (extensive), :class:`AtomwiseIntensive` or :class:`DipoleMoment`.
Head = Union[AtomwiseEnergy, DipoleMoment]


def build_head(
    kind: str, hidden_channels: int, output_hidden: int, max_z: int, activation: str = "shifted_softplus"
) -> Head:
    """The head module of a ``kind`` of :data:`~pyg_schnet.validation.HEAD_KINDS` (or ``output``), its
    hidden layer activated by ``activation`` (:data:`~pyg_schnet.nn.activations.HEAD_ACTIVATIONS`)."""
    if kind == "extensive":
        return AtomwiseEnergy(hidden_channels, output_hidden, max_z, activation)
    if kind == "intensive":
        return AtomwiseIntensive(hidden_channels, output_hidden, max_z, activation)
    if kind in ("dipole", "dipole_moment"):
        return DipoleMoment(hidden_channels, output_hidden, magnitude=kind == "dipole_moment", activation=activation)
    raise ValueError(f"unknown head kind {kind!r}; the kinds are extensive, intensive, dipole, dipole_moment")


def _is_dipole(kind: str) -> bool:
    return kind in ("dipole", "dipole_moment")


class SchNet(nn.Module):
    r"""SchNet (Schütt et al., NeurIPS 2017) for molecular energies and energy-conserving forces.

    .. math::
        \hat E = \sum_i \left(\sigma\, y_i(\mathbf{x}^L_i) + \mu + E^{\text{ref}}_{Z_i}\right), \qquad
        \hat{\mathbf{F}}_i = -\frac{\partial \hat E}{\partial \mathbf{r}_i}

    with :math:`\mathbf{x}^L` from :class:`SchNetRepresentation` and the head
    :class:`~pyg_schnet.nn.AtomwiseEnergy`. Energies come out in the unit of the training targets
    (our benchmarks use kcal/mol), positions go in in Angstrom, forces in energy unit per Angstrom.

    **Heads.** ``config.output`` chooses what ``model(z, pos)`` returns (``[G]``): ``"extensive"`` (the
    sum above), ``"intensive"`` (the mean over the structure's atoms,
    :class:`~pyg_schnet.nn.AtomwiseIntensive`: HOMO, LUMO, gap) or ``"dipole_moment"``
    (:math:`|\boldsymbol\mu|`, e*Angstrom, of latent charges constrained to the total charge,
    :class:`~pyg_schnet.nn.DipoleMoment`). ``config.extra_heads`` adds named heads on the same
    representation (``self.heads``); :meth:`predict` returns all outputs in one pass, :meth:`dipole` the
    dipole vector ``[G, 3]`` and :meth:`charges` the atomic charges of a dipole head. A structure's total
    charge (``charge`` ``[G]``, in e; default 0) enters only the dipole heads' charges (the dipole about
    the centre of geometry does not depend on it; :mod:`pyg_schnet.nn.dipole`). The dipole of a periodic
    structure is not defined (it depends on the images chosen): dipole heads refuse periodic structures.

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
        sizes = (settings.hidden_channels, settings.output_hidden, settings.max_z, settings.head_activation)
        self.head: Head = build_head(settings.output, *sizes)
        #: the extra heads by name (``config.extra_heads``; empty for the paper's model)
        self.heads = nn.ModuleDict({name: build_head(kind, *sizes) for name, kind in settings.extra_heads})

    @classmethod
    def from_paper(cls, **overrides: Any) -> "SchNet":
        """The paper's configuration (:class:`~pyg_schnet.models.config.SchNetConfig` defaults), with
        optional overrides."""
        return cls(SchNetConfig.from_dict(overrides))

    def reset_parameters(self) -> None:
        self.representation.reset_parameters()
        for head in self._all_heads().values():
            head.reset_parameters()

    @property
    def head_kinds(self) -> Dict[str, str]:
        """Every output by name and kind: ``{"energy": config.output, <extra head>: kind, ...}``."""
        return self.settings.head_kinds

    def _all_heads(self) -> Dict[str, Head]:
        return {"energy": self.head, **{name: cast(Head, head) for name, head in self.heads.items()}}

    def head_module(self, name: str = "energy") -> Head:
        """The module of the output ``name`` (``"energy"``: the primary head); :class:`KeyError` naming the
        heads there are."""
        heads = self._all_heads()
        if name not in heads:
            raise KeyError(f"this SchNet has no head {name!r}; its outputs are {list(heads)}")
        return heads[name]

    def set_standardization(
        self, mean: float, std: float, atomref: Optional[Tensor] = None, *, head: str = "energy"
    ) -> None:
        """The standardisation of the output ``head`` (default: the primary one) from the training targets:

        * extensive: per-atom mean and std, optional atomrefs ``[max_z]`` (:class:`~pyg_schnet.nn.AtomwiseEnergy`);
        * intensive: per-structure mean and std; an ``atomref`` is refused (:class:`~pyg_schnet.nn.AtomwiseIntensive`);
        * dipole: ``mean`` 0 and ``std`` the charge scale in e; no atomref (:class:`~pyg_schnet.nn.DipoleMoment`).
        """
        check_standardization(mean, std, atomref)
        module = self.head_module(head)
        try:
            module.set_standardization(mean, std, atomref)
        except ValueError as exc:
            raise ValueError(f"head {head!r} ({self.head_kinds[head]}): {exc}") from exc

    @property
    def mean(self) -> Tensor:
        return self.head.mean

    @property
    def std(self) -> Tensor:
        return self.head.std

    @property
    def atomref(self) -> Tensor:
        return self._scalar_head("atomref").atomref

    def _scalar_head(self, what: str) -> AtomwiseEnergy:
        if not isinstance(self.head, AtomwiseEnergy):
            raise AttributeError(
                f"model.{what}: the primary head is a {type(self.head).__name__} (output={self.settings.output!r}), "
                f"which has no {what}"
            )
        return self.head

    def _dtype(self) -> torch.dtype:
        return self.head.std.dtype

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        *,
        layout: Optional[HostLayout] = None,
        charge: Optional[Tensor] = None,
    ) -> Tensor:
        """The primary output per structure ``[num_graphs]``: the total energy (``output="extensive"``),
        the intensive mean, or the dipole moment norm (e*Angstrom); see the class docstring.

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
            charge: total charge of each structure ``[G]`` in e (``None``: neutral); used by dipole heads only.
        """
        x, z, pos, batch, num_graphs, pbc = self._features(z, pos, batch, cell, pbc, layout)
        return self._apply_head("energy", self.head, x, z, pos, batch, num_graphs, pbc, charge)

    def _features(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor],
        cell: Optional[Tensor],
        pbc: Optional[Tensor],
        layout: Optional[HostLayout],
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, int, Optional[Tensor]]:
        """Atom features ``[N, F]`` and the checked inputs ``(x, z, pos, batch, num_graphs, pbc)``."""
        if layout is not None:
            layout.check_atoms(z.size(0) if isinstance(z, Tensor) and z.dim() else -1)
        z, pos, batch = prepare_inputs(z, pos, batch, self.max_z, self._dtype())
        if layout is not None:
            num_graphs = layout.num_graphs
        else:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        cell, pbc = self._check_periodic(cell, pbc, num_graphs, pos)
        if layout is None:  # a replaced representation may not know the keyword
            x = self.representation(z, pos, batch, cell, pbc)
        else:
            x = self.representation(z, pos, batch, cell, pbc, layout=layout)
        return x, z, pos, batch, num_graphs, pbc

    def _apply_head(
        self,
        name: str,
        head: Head,
        x: Tensor,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        num_graphs: int,
        pbc: Optional[Tensor],
        charge: Optional[Tensor],
    ) -> Tensor:
        """The output of ``head`` (named ``name``) on the features ``x``."""
        if not isinstance(head, DipoleMoment):
            return cast(Tensor, head(x, z, batch, num_graphs))
        self._refuse_periodic_dipole(name, pbc)
        return cast(Tensor, head(x, pos, batch, num_graphs, self._charge(charge, num_graphs, pos)))

    @staticmethod
    def _refuse_periodic_dipole(name: str, pbc: Optional[Tensor]) -> None:
        if pbc is not None and bool(pbc.any()):
            g = int(pbc.any(dim=1).nonzero()[0])
            raise ValueError(
                f"head {name!r} is a dipole head, but structure {g} is periodic (pbc {pbc[g].tolist()}): the "
                "dipole sum_i q_i r_i of a periodic structure depends on which image of each atom is taken "
                "and is not defined; use dipole heads on molecules"
            )

    @staticmethod
    def _charge(charge: Optional[Tensor], num_graphs: int, pos: Tensor) -> Optional[Tensor]:
        """``charge`` as a ``[G]`` tensor of the positions' dtype and device (``None`` stays ``None``)."""
        if charge is None:
            return None
        value = torch.as_tensor(charge).to(device=pos.device, dtype=pos.dtype).reshape(-1)
        if value.numel() != num_graphs:
            raise ValueError(
                f"charge must hold one total charge (e) per structure: {num_graphs} structure(s), got "
                f"{value.numel()} value(s)"
            )
        return value

    def _outputs(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor],
        cell: Optional[Tensor],
        pbc: Optional[Tensor],
        layout: Optional[HostLayout],
        charge: Optional[Tensor],
    ) -> Dict[str, Tensor]:
        x, z, pos, batch, num_graphs, pbc = self._features(z, pos, batch, cell, pbc, layout)
        return {
            name: self._apply_head(name, head, x, z, pos, batch, num_graphs, pbc, charge)
            for name, head in self._all_heads().items()
        }

    def predict(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
        *,
        layout: Optional[HostLayout] = None,
        charge: Optional[Tensor] = None,
        forces: bool = False,
    ) -> Dict[str, Tensor]:
        r"""Every output in one pass over the representation: ``"energy"`` (the primary output ``[G]``, as
        :meth:`forward`) and one entry per extra head (``[G]``; ``[G, 3]`` for a ``"dipole"`` head, in
        e*Angstrom), in the order of ``config.extra_heads``.

        With ``forces=True`` also ``"forces"`` :math:`-\partial E / \partial \mathbf{r}` ``[N, 3]`` of
        the primary output (as :meth:`energy_and_forces`: the graph is kept in training mode, all results
        are detached in eval mode). Arguments as in :meth:`forward`.
        """
        if not forces:
            return self._outputs(z, pos, batch, cell, pbc, layout, charge)
        outputs: Dict[str, Tensor] = {}

        def primary(p: Tensor) -> Tensor:
            outputs.update(self._outputs(z, p, batch, cell, pbc, layout, charge))
            return outputs["energy"]

        check_autograd_available("predict(forces=True)")
        energy, force = energy_and_forces(primary, pos, self.training)
        result = {k: (v if self.training else v.detach()) for k, v in outputs.items()}
        result["energy"] = energy
        result["forces"] = force
        return result

    def dipole_head_name(self, head: Optional[str] = None) -> str:
        """The output whose dipole :meth:`dipole` computes: ``head`` when given (it must be a dipole head),
        else the primary output when it is ``"dipole_moment"``, else the first extra head of kind
        ``"dipole"`` or ``"dipole_moment"``. :class:`ValueError` when the model has none."""
        kinds = self.head_kinds
        if head is not None:
            if head not in kinds:
                raise ValueError(f"this SchNet has no head {head!r}; its outputs are {list(kinds)}")
            if not _is_dipole(kinds[head]):
                raise ValueError(f"head {head!r} is {kinds[head]}, not a dipole head")
            return head
        for name, kind in kinds.items():
            if _is_dipole(kind):
                return name
        raise ValueError(
            f"this SchNet has no dipole head (outputs {kinds}): build it with output='dipole_moment' or "
            "extra_heads=(('dipole', 'dipole'),)"
        )

    def _dipole_part(
        self,
        what: Callable[[DipoleMoment, Tensor, Tensor, Tensor, int, Optional[Tensor]], Tensor],
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor],
        head: Optional[str],
        charge: Optional[Tensor],
        layout: Optional[HostLayout],
    ) -> Tensor:
        name = self.dipole_head_name(head)
        module = cast(DipoleMoment, self.head_module(name))
        x, z, pos, batch, num_graphs, _ = self._features(z, pos, batch, None, None, layout)
        return what(module, x, pos, batch, num_graphs, self._charge(charge, num_graphs, pos))

    def dipole(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        *,
        charge: Optional[Tensor] = None,
        head: Optional[str] = None,
        layout: Optional[HostLayout] = None,
    ) -> Tensor:
        r"""Dipole vectors :math:`\boldsymbol\mu = \sum_i q_i (\mathbf r_i - \mathbf r_c)` ``[G, 3]`` in
        e*Angstrom of the molecules (no periodic structures) of a dipole head (:meth:`dipole_head_name`);
        ``charge`` ``[G]`` the total charges in e (default 0)."""
        return self._dipole_part(lambda m, x, p, b, g, q: m.dipole(x, p, b, g, q), z, pos, batch, head, charge, layout)

    def charges(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        *,
        charge: Optional[Tensor] = None,
        head: Optional[str] = None,
        layout: Optional[HostLayout] = None,
    ) -> Tensor:
        """Latent atomic charges ``[N]`` (e) of a dipole head, summing to each molecule's ``charge``."""
        return self._dipole_part(lambda m, x, p, b, g, q: m.charges(x, b, g, q), z, pos, batch, head, charge, layout)

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
        replaced or subclassed) is :func:`pyg_schnet.models.md_evaluator.supports`. Only the paper's energy
        head is described: a model whose primary output is not ``"extensive"`` raises :class:`ValueError`
        (extra heads, if any, are not exported).
        """
        if self.settings.output != "extensive" or isinstance(self.head, (AtomwiseIntensive, DipoleMoment)):
            raise ValueError(
                "export_weights describes the paper's energy head (a sum of atom energies); this model's "
                f"primary output is {self.settings.output!r} ({type(self.head).__name__}): evaluate it with "
                "the model itself"
            )
        head = self.head
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
