r"""The MD call: energy and analytic forces of one fixed molecule, with as few tensor operations as possible.

A molecular-dynamics step evaluates one structure whose atoms (``z``) never change. For a small
molecule such a call is dominated by per-operation overhead (dispatch, autograd bookkeeping, input
checks), not arithmetic. :class:`MDEvaluator` snapshots a trained :class:`~pyg_schnet.models.SchNet`
for one ``z`` and evaluates

.. math::
    E(\mathbf{R}), \qquad \mathbf{F}_k = -\partial E / \partial \mathbf{r}_k

with a hand-written backward pass instead of autograd. What does not change between steps is
computed once: the embedding rows :math:`\mathbf{a}_{Z_i}`, the constant part of the energy
:math:`N\mu + \sigma \sum_i b_{\text{out}} + \sum_i E^{\text{ref}}_{Z_i}`, the pair list (all pairs
of the molecule for ``cutoff=None``; with a cutoff a Verlet list, see below), transposed and stacked
weights.

Forward (eval, per structure; :math:`p = (i, j)`, :math:`i < j`, the unordered pairs,
:math:`\mathbf{u}_p = (\mathbf{r}_j - \mathbf{r}_i)/d_p`; :math:`\mathrm{ssp}(x) = \ln(1 + e^x) - \ln 2`)

.. math::
    e_{pk} &= \exp(-\gamma (d_p - \mu_k)^2), \quad
    \mathbf{h}^{(1)}_p = W_1 \mathbf{e}_p + \mathbf{b}_1 \;(\text{all blocks stacked}), \\
    \mathbf{h}^{(2)}_{lp} &= W_{2l}\, \mathrm{ssp}(\mathbf{h}^{(1)}_{lp}) + \mathbf{b}_{2l}, \quad
    \mathbf{w}_{lp} = \mathrm{ssp}(\mathbf{h}^{(2)}_{lp})\, f_c(d_p)
    \;(\text{or } \mathbf{h}^{(2)}_{lp} f_c(d_p) \text{ without the filters' last activation}), \\
    \mathbf{y} &= W_{\text{in}} \mathbf{x} + \mathbf{b}_{\text{in}}, \quad
    \mathbf{c}_i = \sum_{p \ni i} \mathbf{w}_{lp} \circ \mathbf{y}_{\text{other}(p, i)}, \quad
    \mathbf{t} = W_{f} \mathbf{c} + \mathbf{b}_f, \quad
    \mathbf{x} \leftarrow \mathbf{x} + W_o\, \mathrm{ssp}(\mathbf{t}) + \mathbf{b}_o, \\
    E &= \sum_i \sigma\,(\mathbf{v}^\top \mathrm{ssp}(H \mathbf{x}_i + \mathbf{b}_H) + b_v)
    + \mu + E^{\text{ref}}_{Z_i}.

Backward (``ssp' = sigmoid``; every dense layer :math:`\mathbf{y} = W\mathbf{x} + \mathbf{b}` sends
:math:`\bar{\mathbf{x}} = W^\top \bar{\mathbf{y}}`):

.. math::
    \bar{\mathbf{x}}_i &= H^\top (\sigma \mathbf{v} \circ \mathrm{sigmoid}(H\mathbf{x}_i + \mathbf{b}_H)), \\
    \text{per block, last first:}\quad
    \bar{\mathbf{t}} &= \mathrm{sigmoid}(\mathbf{t}) \circ W_o^\top \bar{\mathbf{x}}, \quad
    \bar{\mathbf{c}} = W_f^\top \bar{\mathbf{t}}, \quad
    \bar{\mathbf{y}}_j = \sum_{p \ni j} \mathbf{w}_{lp} \circ \bar{\mathbf{c}}_{\text{other}(p, j)}, \\
    \bar{\mathbf{w}}_{lp} &= \bar{\mathbf{c}}_i \circ \mathbf{y}_j + \bar{\mathbf{c}}_j \circ \mathbf{y}_i, \quad
    \bar{\mathbf{x}} \mathrel{+}= W_{\text{in}}^\top \bar{\mathbf{y}}, \\
    \frac{\partial E}{\partial d_p} &= \sum_l \bar{\mathbf{w}}_{lp} \cdot \frac{d \mathbf{w}_l}{d d}(d_p), \qquad
    \mathbf{F}_i = \sum_{p = (i, j)} \frac{\partial E}{\partial d_p} \mathbf{u}_p
    - \sum_{p = (j, i)} \frac{\partial E}{\partial d_p} \mathbf{u}_p.

The filter derivative :math:`d\mathbf{w}/dd` is carried forward alongside the filters (forward
mode; one scalar input per pair makes that as cheap as reverse mode):

.. math::
    \frac{d e_{pk}}{d d} = -2\gamma (d_p - \mu_k) e_{pk}, \quad
    \frac{d \mathbf{h}^{(1)}}{d d} = W_1 \frac{d\mathbf{e}}{d d}, \quad
    \frac{d \mathbf{h}^{(2)}_l}{d d} = W_{2l}\,\big(\mathrm{sigmoid}(\mathbf{h}^{(1)}_l)
    \circ \tfrac{d \mathbf{h}^{(1)}_l}{d d}\big), \\
    \frac{d \mathbf{w}_l}{d d} = \mathrm{sigmoid}(\mathbf{h}^{(2)}_l) \circ \frac{d \mathbf{h}^{(2)}_l}{d d}\, f_c
    + \mathrm{ssp}(\mathbf{h}^{(2)}_l)\, f_c', \qquad
    f_c'(d) = -\frac{\pi}{2 r_c} \sin\frac{\pi d}{r_c} \;(d < r_c), \; 0 \text{ beyond}.

Two modes:

- ``"exact"``: the filters as above, with the Gaussian window of :mod:`pyg_schnet.nn.fused` (only
  centres within :math:`\sqrt{-\ln t/\gamma}` of the distance range). Equals
  :meth:`SchNet.energy_and_forces` to rounding (tests: 1e-10 in float64, 1e-5 relative in float32).
- ``"tabulated"``: the filters :math:`\mathbf{w}_l(d)` of all blocks (cutoff included) and their
  derivatives are tabulated once on a uniform grid of spacing :math:`h` over :math:`[0, d_{\text{end}}]`
  and interpolated by cubic Hermite polynomials (C1). The energy is the model's with the interpolated
  filters, and the forces are its exact negative gradient (the derivative of the interpolant, not an
  interpolated derivative), so energy is conserved in MD. Per filter entry the error is bounded by
  :math:`h^4 \max|w^{(4)}| / 384` (value) and :math:`\sqrt{3}\, h^3 \max|w^{(4)}| / 216`
  (derivative); :meth:`MDEvaluator.tabulation_error_bound` returns both, estimating
  :math:`\max|w^{(4)}|` from fourth differences on the grid. :math:`d_{\text{end}}` is the cutoff,
  or without one the last centre plus the Gaussian window width, beyond which every Gaussian is
  below float32's smallest normal number and the filter is constant (longer distances are clamped).

Pair list. ``cutoff=None``, or a molecule of at most :data:`ALL_PAIRS_MAX_ATOMS` atoms: all pairs of
the molecule, built once. Else, with a cutoff :math:`r_c`: all pairs within :math:`r_c + \text{skin}`
of the positions at the last rebuild, rebuilt when an atom has moved more than skin/2 since (one host
synchronisation per call); pairs beyond :math:`r_c` carry exactly zero filter (:math:`f_c = 0`) and zero
derivative, so the result does not depend on the skin.

Errors. ``z`` is validated once (:func:`pyg_schnet.validation.check_inputs`). Per call the shape of
``pos`` is checked in Python. Positions given as a CPU tensor (what the ASE calculator passes) are
checked on the host before they go to the device: finite, within
:data:`~pyg_schnet.validation.MAX_ABS_POSITION`, no two atoms at the same place (from the pair
distances, which also give the Gaussian window); a fault re-runs the model's own checks to raise
their error naming the atom. Nothing is then read from the device (no host synchronisation) when the
pair list is fixed (no cutoff, or at most :data:`ALL_PAIRS_MAX_ATOMS` atoms) and the weights are
finite (checked once, by :meth:`MDEvaluator.refresh`). A non-finite result is then possible only by
overflow inside the model (finite weights, valid positions); callers that copy the results to the
host check them there (:class:`~pyg_schnet.simulation.ase.SchNetCalculator`). Positions on the device,
a Verlet list or non-finite weights: the range and the result's finiteness are read from the device
(one or two synchronisations), and a non-finite result raises as above.

Table size. ``"tabulated"`` needs :math:`d_{\text{end}}/h` intervals of :math:`4 L F_f` coefficients:
for a small :math:`\gamma` the Gaussian window width, hence :math:`d_{\text{end}}`, grows as
:math:`\gamma^{-1/2}` (3.4 GB at :math:`\gamma = 10^{-4}`, 142 GB at :math:`10^{-9}` with the default
spacing). The memory of building it (:func:`table_bytes`) is computed before anything is allocated;
above :data:`MAX_TABLE_BYTES` the evaluator falls back to ``"exact"`` with a
:class:`TabulationFallbackWarning` saying why (:attr:`MDEvaluator.fallback_reason`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from pyg_schnet.graph import build_pairs, edge_distances, full_pairs
from pyg_schnet.graph.pairs import host_all_pairs
from pyg_schnet.models.representation import SchNetRepresentation
from pyg_schnet.models.schnet import SchNet
from pyg_schnet.models.weights import SchNetWeights
from pyg_schnet.nn import AtomwiseEnergy, CFConv, Dense, InteractionBlock, ShiftedSoftplus, fused
from pyg_schnet.nn.activations import LN2, softplus
from pyg_schnet.nn.cutoff import cosine_cutoff, cosine_cutoff_derivative
from pyg_schnet.nn.radial import gaussians
from pyg_schnet.validation import MAX_ABS_POSITION, check_distinct_positions, check_inputs

_MODES = ("exact", "tabulated")

#: Largest memory (bytes) that building the ``"tabulated"`` filter table may take
#: (:func:`table_bytes`); above it the evaluator computes the filters exactly instead. The paper's
#: Gaussians (gamma = 10, 301 centres up to 30 Angstrom, h = 0.005 Angstrom, 3 blocks of 64 filters)
#: need about 0.1 GB.
MAX_TABLE_BYTES = 1 << 30


class TabulationFallbackWarning(UserWarning):
    """``MDEvaluator(mode="tabulated")`` computes the filters exactly because their table would take
    more than :data:`MAX_TABLE_BYTES` (the message gives the sizes)."""


def table_bytes(end: float, spacing: float, num_gaussians: int, num_filters_total: int) -> int:
    r"""Peak memory (bytes) of building the filter table: :math:`G = \lceil d_{\text{end}} / h \rceil`
    intervals, float64 node values of the Gaussians, their derivatives and the filter pre-activations
    and values with derivatives (about :math:`(G + 1)(3K + 8 L F_f) \cdot 8` bytes), the coefficients
    :math:`G \cdot 4 L F_f \cdot 8` twice (float64, then the computation dtype)."""
    intervals = max(math.ceil(end / spacing), 1) if math.isfinite(end / spacing) else math.inf
    nodes = (intervals + 1) * (3 * num_gaussians + 8 * num_filters_total) * 8
    coefficients = intervals * 4 * num_filters_total * 8 * 2
    total = nodes + coefficients
    return int(total) if math.isfinite(total) else 1 << 62


def _has_hooks(module: nn.Module) -> Optional[str]:
    """The name of a submodule with forward hooks (which the evaluator would not run), else ``None``."""
    for name, sub in module.named_modules():
        if sub._forward_hooks or sub._forward_pre_hooks:
            return name or "the model"
    return None


def supports(model: object) -> Optional[str]:
    """``None`` when :class:`MDEvaluator` computes exactly what ``model`` computes, else the reason why not.

    The evaluator re-implements the paper's SchNet from its weights (:meth:`SchNet.export_weights`),
    so it accepts only that model: a :class:`~pyg_schnet.SchNet` itself (no subclass: an overridden
    ``forward`` would be ignored), with :class:`~pyg_schnet.models.SchNetRepresentation`,
    :class:`~pyg_schnet.nn.AtomwiseEnergy` and :class:`~pyg_schnet.nn.InteractionBlock` blocks
    of exactly these types, their dense layers :class:`~pyg_schnet.nn.Dense`, every activation
    :class:`~pyg_schnet.nn.ShiftedSoftplus`, :class:`~pyg_schnet.nn.CFConv` without PyG hooks and
    with the plain filter modules (:func:`pyg_schnet.nn.fused.fusable`), one filter width for all
    blocks, no forward hooks anywhere, and the paper's output alone (``config.output == "extensive"``,
    no ``extra_heads``: the evaluator computes energies and forces only).
    """
    if type(model) is not SchNet:
        return (
            f"the model is a {type(model).__name__}, not a pyg_schnet SchNet itself (a subclass may "
            "override forward, which the evaluator would not run)"
        )
    settings = getattr(model, "settings", None)
    if settings is not None and settings.output != "extensive":
        return (
            f"its primary output is {settings.output!r}, not the paper's energy (a sum of atom energies), "
            "which is all the evaluator computes"
        )
    if settings is not None and settings.extra_heads:
        names = ", ".join(f"{name!r} ({kind})" for name, kind in settings.extra_heads)
        return f"it has extra heads ({names}), which the evaluator does not compute"
    rep, head = model.representation, model.head
    if type(rep) is not SchNetRepresentation:
        return f"model.representation is a {type(rep).__name__}, not a SchNetRepresentation"
    if type(rep.embedding) is not nn.Embedding:
        return f"model.representation.embedding is a {type(rep.embedding).__name__}, not a torch.nn.Embedding"
    if type(head) is not AtomwiseEnergy:
        return f"model.head is a {type(head).__name__}, not an AtomwiseEnergy"
    net = head.net
    if (
        type(net) is not nn.Sequential
        or len(net) != 3
        or type(net[0]) is not Dense
        or type(net[1]) is not ShiftedSoftplus
        or type(net[2]) is not Dense
    ):
        return "model.head.net is not Dense -> ShiftedSoftplus -> Dense"
    for l, block in enumerate(rep.interactions):
        where = f"model.representation.interactions[{l}]"
        if type(block) is not InteractionBlock:
            return f"{where} is a {type(block).__name__}, not an InteractionBlock"
        for name in ("in2filter", "filter2out", "out"):
            if type(getattr(block, name)) is not Dense:
                return f"{where}.{name} is a {type(getattr(block, name)).__name__}, not a Dense layer"
        if type(block.act) is not ShiftedSoftplus:
            return f"{where}.act is a {type(block.act).__name__}, not a ShiftedSoftplus"
        if type(block.conv) is not CFConv:
            return f"{where}.conv is a {type(block.conv).__name__}, not a CFConv"
        if not block.conv.is_plain():
            return f"{where}.conv has PyG message-passing hooks or explanations, which the evaluator would not run"
    if not fused.fusable(rep.rbf, rep.convs):
        return "the Gaussian expansion or a filter network (layers, activations, cutoff) was replaced"
    if len({conv.channels for conv in rep.convs}) > 1:
        return "the interaction blocks have different numbers of filters"
    hooked = _has_hooks(model)
    if hooked is not None:
        return f"{hooked} has forward hooks, which the evaluator would not run"
    return None


def neighbour_guard_reason(model: SchNet, num_atoms: int) -> Optional[str]:
    """Why :class:`MDEvaluator` must not evaluate ``model`` on a molecule of ``num_atoms`` atoms because of
    the model's ``max_num_neighbors`` guard (``None``: it may). The evaluator does not count neighbours
    (that would read the device every call), so it evaluates only molecules where no atom can have more
    neighbours than the guard allows (``num_atoms - 1 <= max_num_neighbors``); the model itself raises
    for an atom with more."""
    guard = model.settings.max_num_neighbors
    if guard is None or num_atoms - 1 <= guard:
        return None
    return (
        f"the model's max_num_neighbors guard ({guard}) is checked by the model only, and an atom of this "
        f"{num_atoms}-atom molecule could have more neighbours"
    )


@dataclass(frozen=True)
class _FoldedBlock:
    """One block's weights as the evaluator multiplies them: transposed for the forward pass, as
    stored for the backward pass, and the input bias with the out-layer biases of earlier blocks
    folded in (see :meth:`MDEvaluator.refresh`)."""

    in2filter_t: Tensor
    in2filter_bias: Tensor
    filter2out_t: Tensor
    filter2out_bias: Tensor
    out_t: Tensor
    in2filter: Tensor
    filter2out: Tensor
    out: Tensor


@dataclass(frozen=True)
class _FilterWeights:
    """The filter networks of all blocks, stacked: first layers ``w1`` ``[L*Ff, K]`` (and ``w1t``
    transposed), biases ``b1``; second layers ``w2t`` ``[L, Ff, Ff]`` (in, out) with the ``-ln 2`` of
    the first activation folded into ``b2`` ``[L, 1, Ff]``."""

    w1t: Tensor
    b1: Tensor
    w2t: Tensor
    b2: Tensor
    centers: Tensor

    @staticmethod
    def of(weights: SchNetWeights, dtype: torch.dtype) -> "_FilterWeights":
        blocks = weights.blocks
        w1 = torch.cat([b.filter_first.weight for b in blocks], 0).to(dtype)
        return _FilterWeights(
            w1t=w1.t().contiguous(),  # [K, L*Ff]: row windows stay contiguous
            b1=torch.cat([b.filter_first.bias for b in blocks], 0).to(dtype),
            w2t=torch.stack([b.filter_second.weight.t() for b in blocks]).to(dtype),
            b2=torch.stack(
                [(b.filter_second.bias - LN2 * b.filter_second.weight.sum(1)).unsqueeze(0) for b in blocks]
            ).to(dtype),
            centers=weights.centers.to(dtype),
        )


class MDEvaluator:
    r"""Energy and forces of one molecule (fixed ``z``) for MD, without autograd (see the module docstring).

    Built by an explicit conversion: the model's named weights (:meth:`SchNet.export_weights`) are
    copied at construction, for a model that :func:`supports` accepts (else :class:`ValueError` with
    the reason). Call :meth:`refresh` after changing the model's weights.

    Args:
        model: a :class:`~pyg_schnet.models.SchNet` with the paper's modules (:func:`supports`).
        z: atomic numbers ``[N]`` (validated once).
        mode: ``"exact"`` (equal to the model to rounding) or ``"tabulated"`` (spline filters).
        dtype: computation dtype (default: the model's).
        spacing: grid spacing :math:`h` (Angstrom) of ``"tabulated"``; the default 0.005 Angstrom
            keeps the filter error near float32 rounding for the paper's Gaussians (gamma = 10).
        skin: Verlet skin (Angstrom) of the pair list of a model with a cutoff.
        max_table_bytes: memory limit of the ``"tabulated"`` table (default :data:`MAX_TABLE_BYTES`);
            a table above it falls back to ``"exact"`` with a :class:`TabulationFallbackWarning`.

    Call: ``evaluator(pos, cell=None, pbc=None) -> (energy [1], forces [N, 3])``, positions in
    Angstrom, energy in the model's unit, forces in energy unit per Angstrom.
    Periodic structures (``pbc`` with a ``True``) raise :class:`NotImplementedError`: use
    :meth:`SchNet.energy_and_forces`.
    """

    def __init__(
        self,
        model: SchNet,
        z: Tensor,
        *,
        mode: str = "exact",
        dtype: Optional[torch.dtype] = None,
        spacing: float = 0.005,
        skin: float = 1.0,
        max_table_bytes: Optional[int] = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"MDEvaluator: mode must be one of {_MODES}, got {mode!r}")
        if not isinstance(model, SchNet):
            raise TypeError(f"MDEvaluator needs a pyg_schnet SchNet, got {type(model).__name__}")
        reason = supports(model) or neighbour_guard_reason(model, int(torch.as_tensor(z).numel()))
        if reason is not None:
            raise ValueError(f"MDEvaluator cannot evaluate this model: {reason}; use model.energy_and_forces")
        if not (spacing > 0 and math.isfinite(spacing)):
            raise ValueError(f"MDEvaluator: spacing must be a positive number of Angstrom, got {spacing}")
        if not (skin >= 0 and math.isfinite(skin)):
            raise ValueError(f"MDEvaluator: skin must be a non-negative number of Angstrom, got {skin}")
        if not isinstance(z, Tensor):
            z = torch.as_tensor(z)
        device = model.head.mean.device
        z = z.to(device)
        check_inputs(z, torch.zeros(z.numel(), 3, device=device), None, model.max_z)
        self.model = model
        self.mode = mode
        #: Why ``mode`` is ``"exact"`` although ``"tabulated"`` was asked for (``None``: it is not).
        self.fallback_reason: Optional[str] = None
        self.max_table_bytes = MAX_TABLE_BYTES if max_table_bytes is None else int(max_table_bytes)
        self.dtype = dtype if dtype is not None else model.head.mean.dtype
        self.spacing = float(spacing)
        self.skin = float(skin)
        self.z = z
        self.num_atoms = int(z.numel())
        self.refresh()

    # ------------------------------------------------------------------ caches
    def refresh(self) -> None:
        """Convert the model's current weights (call after training or ``reset_parameters``)."""
        weights = self.model.export_weights()
        self.weights = weights
        dt, z = self.dtype, self.z
        with torch.no_grad():

            def c(t: Tensor) -> Tensor:
                return t.to(dt).contiguous()

            self.cutoff: Optional[float] = weights.cutoff
            self.x0 = c(weights.embedding[z])  # [N, F]
            blocks = weights.blocks
            self.num_blocks = len(blocks)
            self.num_filters = int(blocks[0].filter_first.weight.size(0)) if blocks else 0
            self.gamma = weights.gamma
            self.filters = _FilterWeights.of(weights, dt) if blocks else None
            # The out-layer biases b_o of the blocks are not added to x: with B_l = sum of the shifted
            # b_o - ln2 W_o 1 of blocks < l, x_true = x + B_l, and B_l is folded into the biases of the
            # layers that read x (in2filter of later blocks, the head's first layer); the residual
            # update becomes one addmm.
            self.blocks: List[_FoldedBlock] = []
            shift = torch.zeros(weights.embedding.size(1), dtype=torch.float64, device=self.x0.device)
            for b in blocks:
                Win, Wo = b.in2filter.weight.double(), b.out.weight.double()
                self.blocks.append(
                    _FoldedBlock(
                        in2filter_t=c(b.in2filter.weight.t()),
                        in2filter_bias=c(b.in2filter.bias.double() + Win @ shift),
                        filter2out_t=c(b.filter2out.weight.t()),
                        filter2out_bias=c(b.filter2out.bias),
                        out_t=c(b.out.weight.t()),
                        in2filter=c(b.in2filter.weight),
                        filter2out=c(b.filter2out.weight),
                        out=c(b.out.weight),
                    )
                )
                shift = shift + b.out.bias.double() - LN2 * Wo.sum(1)
            h1, h2 = weights.head_hidden, weights.head_out
            std = weights.std
            self.H1t, self.H1 = c(h1.weight.t()), c(h1.weight)
            self.hb1 = c(h1.bias.double() + h1.weight.double() @ shift)
            self.v_std = c(std * h2.weight.reshape(-1))  # [H]
            const = self.num_atoms * (weights.mean + std * float(h2.bias - LN2 * h2.weight.sum())) + float(
                weights.atomref[z].double().sum()
            )
            self.const = torch.full((1,), const, dtype=dt, device=self.x0.device)
            self._batch = torch.zeros(self.num_atoms, dtype=torch.long, device=self.x0.device)
            self._edge_cache: Optional[_Edges] = None
            self._ref_pos: Optional[Tensor] = None
            self._table: Optional[Tensor] = None
            # one read of the device per refresh: with finite weights a call needs none (module docstring)
            self._weights_finite = bool(
                torch.stack(
                    [torch.isfinite(t).all() for t in self.model.state_dict().values() if t.is_floating_point()]
                ).all()
            )
            if self.mode == "tabulated" and blocks:
                reason = self._table_too_large()
                if reason is None:
                    self._build_table()
                else:
                    self.mode, self.fallback_reason = "exact", reason
                    warnings.warn(f"MDEvaluator: {reason}", TabulationFallbackWarning, stacklevel=3)

    # ------------------------------------------------------------------ filters
    def _filters_exact(
        self, d: Tensor, filters: Optional["_FilterWeights"] = None, window: Optional[Tuple[int, int]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Filters ``[L, P, Ff]`` and their derivatives in ``d`` (forward mode), windowed Gaussians
        (``window``: the centres ``lo, hi`` known on the host, else read from the distances)."""
        fw = filters if filters is not None else self.filters
        assert fw is not None
        weights = self.weights
        if window is not None:
            lo, hi = window
        else:
            try:
                lo, hi = fused.distance_window(
                    weights.rbf_start, weights.rbf_stop, weights.num_gaussians, self.gamma, d
                )
            except (ValueError, OverflowError):  # non-finite distances: the result is checked afterwards
                lo, hi = 0, weights.num_gaussians
        t = d.unsqueeze(-1) - fw.centers[lo:hi]
        e = gaussians(t, self.gamma)
        de = (e * t).mul_(-2.0 * self.gamma)
        W1t = fw.w1t[lo:hi]
        h1 = torch.addmm(fw.b1, e, W1t)  # [P, L*Ff]
        dh1 = torch.mm(de, W1t).mul_(torch.sigmoid(h1))
        P, L, Ff = d.numel(), self.num_blocks, self.num_filters
        h2 = torch.baddbmm(fw.b2, softplus(h1).view(P, L, Ff).transpose(0, 1), fw.w2t)  # [L, P, Ff]
        dh2 = torch.bmm(dh1.view(P, L, Ff).transpose(0, 1), fw.w2t)
        if weights.filter_activation:
            w = softplus(h2).sub_(LN2)
            dw = dh2.mul_(torch.sigmoid(h2))
        else:  # a linear second layer (PyG's and SchNetPack's filter network)
            w, dw = h2, dh2
        if self.cutoff is not None:
            fc = cosine_cutoff(d, self.cutoff).unsqueeze(-1)
            dfc = cosine_cutoff_derivative(d, self.cutoff).unsqueeze(-1)
            dw = dw.mul_(fc).add_(w * dfc)
            w = w.mul_(fc)
        return w, dw

    def _table_end(self) -> float:
        if self.cutoff is not None:
            return float(self.cutoff)
        return max(self.weights.rbf_stop, self.weights.rbf_start) + fused.gaussian_width(self.gamma)

    def _table_too_large(self) -> Optional[str]:
        """Why the table cannot be built within :attr:`max_table_bytes` (``None``: it can)."""
        end, h = self._table_end(), self.spacing
        width = self.num_blocks * self.num_filters
        need = table_bytes(end, h, self.weights.num_gaussians, width)
        if need <= self.max_table_bytes:
            return None
        return (
            f"the filter table of mode='tabulated' would span 0..{end:.4g} Angstrom in {math.ceil(end / h):,} "
            f"intervals of {h:g} Angstrom (gamma = {self.gamma:g} Angstrom^-2: each Gaussian reaches "
            f"{fused.gaussian_width(self.gamma):.4g} Angstrom) and take about {need / 2**30:.3g} GiB to build, more "
            f"than the limit of {self.max_table_bytes / 2**30:.3g} GiB (max_table_bytes): computing the "
            "filters exactly instead (mode='exact', the model's numbers to rounding)"
        )

    def _build_table(self) -> None:
        """Cubic coefficients ``[G, 4, L*Ff]`` per grid interval of the filters of all blocks (float64)."""
        h = self.spacing
        G = max(int(math.ceil(self._table_end() / h)), 1)
        nodes = torch.arange(G + 1, dtype=torch.float64, device=self.x0.device) * h
        w, dw = self._exact_filters_float64(nodes)  # tabulated in float64 whatever the computation dtype
        p0, p1 = w[:-1], w[1:]
        m0, m1 = h * dw[:-1], h * dw[1:]
        coeffs = torch.stack([p0, m0, 3 * (p1 - p0) - 2 * m0 - m1, 2 * (p0 - p1) + m0 + m1], dim=1)
        self._table = coeffs.to(self.dtype).contiguous()  # [G, 4, L*Ff]
        self._nodes_w = w  # float64 node values, for the error bound
        self._num_intervals = G
        self._inv_h = 1.0 / h
        self._s_max = G * (1.0 - 4 * torch.finfo(self.dtype).eps)  # floor(s) <= G - 1
        dev = self.x0.device
        self._pow = torch.tensor([0, 1, 2, 3, 0, 0, 1, 2], dtype=self.dtype, device=dev)
        self._pow_scale = torch.tensor([1, 1, 1, 1, 0, 1 / h, 2 / h, 3 / h], dtype=self.dtype, device=dev)

    def _exact_filters_float64(self, d: Tensor) -> Tuple[Tensor, Tensor]:
        """Node values ``[G+1, L*Ff]`` of the filters and derivatives, from float64 copies of the weights."""
        with torch.no_grad():
            w, dw = self._filters_exact(d, _FilterWeights.of(self.weights, torch.float64))
        L, P, Ff = w.shape
        return w.transpose(0, 1).reshape(P, L * Ff), dw.transpose(0, 1).reshape(P, L * Ff)

    def _filters_tabulated(self, d: Tensor) -> Tuple[Tensor, Tensor]:
        """Filters and derivatives ``[L, P, Ff]`` from the cubic Hermite table."""
        # beyond the table: the end of the last interval (t just below 1; the filter is flat there)
        s = (d * self._inv_h).clamp_(max=self._s_max)
        idx = s.long().clamp_(min=0)  # NaN distances: any index, a NaN result
        t = s.frac()
        basis = t.unsqueeze(-1).pow(self._pow).mul_(self._pow_scale).view(-1, 2, 4)  # [P, 2, 4]
        assert self._table is not None  # tabulated mode with blocks (see refresh)
        both = torch.bmm(basis, self._table.index_select(0, idx))  # [P, 2, L*Ff]
        P, L, Ff = d.numel(), self.num_blocks, self.num_filters
        both = both.view(P, 2, L, Ff).permute(1, 2, 0, 3).contiguous()
        return both[0], both[1]

    def tabulation_error_bound(self) -> Tuple[float, float]:
        r"""Bounds on the interpolation error of any filter entry, value and derivative (Angstrom^-1):
        :math:`h^4 M/384` and :math:`\sqrt 3 h^3 M/216` with :math:`M = \max|w^{(4)}|` estimated as
        1.25 times the largest fourth difference on the grid over :math:`h^4` (the grid samples
        :math:`w^{(4)}`; measured errors reach 0.92-1.03 of the bound without the factor 1.25)
        (``"tabulated"`` mode only)."""
        if self._table is None:
            raise ValueError("tabulation_error_bound: this evaluator is not in tabulated mode")
        w, h = self._nodes_w, self.spacing
        fourth = 1.25 * (w[4:] - 4 * w[3:-1] + 6 * w[2:-2] - 4 * w[1:-3] + w[:-4]).abs().max().item() / h**4
        return h**4 * fourth / 384.0, math.sqrt(3.0) * h**3 * fourth / 216.0

    # ------------------------------------------------------------------ pairs
    def _edges(self, pos: Tensor) -> "_Edges":
        """The directed edges (each pair in both directions) and their gather/scatter operators."""
        if self.cutoff is None or self.num_atoms <= ALL_PAIRS_MAX_ATOMS:
            # all pairs: fixed for the molecule; with a cutoff, pairs beyond it add exact zeros
            if self._edge_cache is None:
                self._edge_cache = _Edges(full_pairs(self._batch), self.num_atoms, pos.dtype)
            return self._edge_cache
        if self._edge_cache is not None and self._ref_pos is not None:
            moved = (pos - self._ref_pos).square().sum(1).max()
            if float(moved) <= (0.5 * self.skin) ** 2:
                return self._edge_cache
        self._edge_cache = _Edges(build_pairs(pos, self._batch, self.cutoff + self.skin), self.num_atoms, pos.dtype)
        self._ref_pos = pos.clone()
        return self._edge_cache

    # ------------------------------------------------------------------ call
    def __call__(
        self, pos: Tensor, cell: Optional[Tensor] = None, pbc: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """Energy ``[1]`` and forces ``[N, 3]`` at positions ``pos`` ``[N, 3]`` (Angstrom)."""
        if pbc is not None and bool(torch.as_tensor(pbc).any()):
            raise NotImplementedError(
                "MDEvaluator handles molecules only; for a periodic structure use model.energy_and_forces "
                "(or model.energy_forces_stress)"
            )
        if not isinstance(pos, Tensor) or pos.shape != (self.num_atoms, 3):
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"MDEvaluator: pos must be a tensor [{self.num_atoms}, 3] (Angstrom), got {shape}")
        with torch.inference_mode():
            host = pos.device.type == "cpu" and self._fixed_pairs()
            window = self._host_checks(pos) if host else None  # raises for bad positions
            p = pos.detach().to(self.x0.device, self.dtype, non_blocking=host)
            energy, forces = self._evaluate(p, window)
            # NaN positions give a NaN result; absurd ones are refused as the model does
            if not (host and self._weights_finite) and (
                not math.isfinite(float(forces.sum() + energy))
                or float(torch.linalg.vector_norm(p, math.inf)) > MAX_ABS_POSITION
            ):
                self._diagnose(pos)
        return energy, forces

    def _fixed_pairs(self) -> bool:
        """Whether the pair list is all pairs of the molecule, built once (see :meth:`_edges`)."""
        return self.cutoff is None or self.num_atoms <= ALL_PAIRS_MAX_ATOMS

    def _host_checks(self, pos: Tensor) -> Optional[Tuple[int, int]]:
        """Check positions given as a CPU tensor on the host, in the evaluator's dtype (as the device
        will see them): finite, within ``MAX_ABS_POSITION``, no two atoms at the same place (else the
        model's error, :meth:`_diagnose`); return the Gaussian window of their pair distances (capped at
        the cutoff: the filters are zero beyond it), ``None`` for the tabulated filters."""
        if pos.device.type != "cpu":
            raise ValueError(f"MDEvaluator._host_checks needs positions on the CPU, got {pos.device}")
        r = pos.detach().to(self.dtype).numpy()
        if r.size and not (np.abs(r) <= MAX_ABS_POSITION).all():  # NaN compares false
            self._diagnose(pos)
        pairs = host_all_pairs((self.num_atoms,))
        if not pairs.shape[1]:
            return None
        d = np.linalg.norm(r[pairs[1]] - r[pairs[0]], axis=1)
        d_min = float(d.min())
        if d_min == 0.0:
            self._diagnose(pos)
        if self.mode != "exact":
            return None
        weights = self.weights
        d_max = float(d.max()) if self.cutoff is None else min(float(d.max()), self.cutoff)
        return fused.range_window(
            weights.rbf_start, weights.rbf_stop, weights.num_gaussians, self.gamma, (min(d_min, d_max), d_max)
        )

    def _evaluate(self, pos: Tensor, window: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        if not self.num_blocks:  # the embedding alone: no distance enters the energy
            energy = torch.addmv(
                self.const, softplus(torch.addmm(self.hb1, self.x0, self.H1t)).sum(0, keepdim=True), self.v_std
            )
            return energy, pos.new_zeros(self.num_atoms, 3)
        edges = self._edges(pos)
        vec = edges.difference(pos)  # [E, 3]: r_src - r_dst per directed edge
        d = torch.linalg.vector_norm(vec, dim=1)
        if self.mode == "exact":  # the filter network once per pair, then both directions
            w, dw = self._filters_exact(d[: d.numel() // 2], window=window)
            w, dw = torch.cat([w, w], 1), torch.cat([dw, dw], 1)  # [L, E, Ff]
        else:  # a table look-up per edge costs less than the copies
            w, dw = self._filters_tabulated(d)
        x = self.x0
        saved = []
        for l, block in enumerate(self.blocks):
            y_src = edges.gather_src(torch.addmm(block.in2filter_bias, x, block.in2filter_t))  # [E, Ff]
            t = torch.addmm(block.filter2out_bias, edges.scatter_dst(y_src * w[l]), block.filter2out_t)
            x = torch.addmm(x, softplus(t), block.out_t)  # residual; the bias is folded (see refresh)
            saved.append((y_src, t))
        g = torch.addmm(self.hb1, x, self.H1t)
        energy = torch.addmv(self.const, softplus(g).sum(0, keepdim=True), self.v_std)
        # backward: dE/dx, then per block (last first) dE/dy and dE/dw
        gx = torch.mm(torch.sigmoid(g).mul_(self.v_std), self.H1)
        gw = torch.empty_like(w)
        for l in range(self.num_blocks - 1, -1, -1):
            block = self.blocks[l]
            y_src, t = saved[l]
            gc_dst = edges.gather_dst(
                torch.mm(torch.mm(gx, block.out).mul_(torch.sigmoid(t)), block.filter2out)
            )  # [E, Ff]
            gx = torch.addmm(gx, edges.scatter_src(gc_dst * w[l]), block.in2filter)
            torch.mul(gc_dst, y_src, out=gw[l])
        gd = gw.mul_(dw).sum((0, 2))  # dE/dd per directed edge [E]
        return energy, edges.force(vec.mul_((gd / d).unsqueeze(1)))

    def _diagnose(self, pos: Tensor) -> None:
        """Raise the model's error for bad positions, else a generic one for a non-finite result."""
        check_inputs(self.z, pos, None, self.model.max_z)
        p = pos.detach().to(self.dtype)
        pairs = full_pairs(self._batch)
        check_distinct_positions(edge_distances(p, pairs), pairs, self._batch)
        raise FloatingPointError(
            "MDEvaluator: the energy or forces are not finite for finite, distinct positions "
            "(overflow in the model's weights or outputs)"
        )


#: With a cutoff, molecules of at most this many atoms keep all their pairs (no Verlet list to check
#: or rebuild; pairs beyond the cutoff contribute exact zeros).
ALL_PAIRS_MAX_ATOMS = 32

#: Largest ``edges x atoms`` for which gathers and scatters are products with dense one-hot matrices
#: (fewer, cheaper operations for small molecules); above it, index_select / index_add_.
DENSE_INCIDENCE_MAX = 1 << 16


class _Edges:
    r"""Directed edges ``src -> dst`` of unordered ``pairs`` ``[2, P]`` (both directions, ``E = 2P``)
    with the four gathers/scatters the evaluator needs and the force assembly
    :math:`\mathbf{F} = -A^\top (\partial E/\partial d \,\mathbf{u})`, :math:`A = S - D` the signed
    incidence (``vec = A pos = r_src - r_dst``). Small graphs use dense one-hot matrices ``S``, ``D``
    (one matrix product each), large ones index operations."""

    def __init__(self, pairs: Tensor, num_atoms: int, dtype: torch.dtype) -> None:
        self.src = torch.cat([pairs[1], pairs[0]])
        self.dst = torch.cat([pairs[0], pairs[1]])
        self.num_atoms = num_atoms
        E = self.src.numel()
        self.dense = E * num_atoms <= DENSE_INCIDENCE_MAX
        if self.dense:
            eye = torch.eye(num_atoms, dtype=dtype, device=pairs.device)
            S, D = eye[self.src], eye[self.dst]  # [E, N]
            self.St, self.Dt = S.t().contiguous(), D.t().contiguous()
            self.A = S - D
            self.minus_At = (-self.A).t().contiguous()

    def difference(self, pos: Tensor) -> Tensor:
        if self.dense:
            return torch.mm(self.A, pos)
        return pos.index_select(0, self.src) - pos.index_select(0, self.dst)

    # gathers are index_select (faster than a one-hot product on a small molecule), scatters one-hot
    # products where dense (faster than index_add_)
    def gather_src(self, y: Tensor) -> Tensor:
        return y.index_select(0, self.src)

    def gather_dst(self, y: Tensor) -> Tensor:
        return y.index_select(0, self.dst)

    def scatter_dst(self, m: Tensor) -> Tensor:
        if self.dense:
            return torch.mm(self.Dt, m)
        return m.new_zeros(self.num_atoms, m.size(1)).index_add_(0, self.dst, m)

    def scatter_src(self, m: Tensor) -> Tensor:
        if self.dense:
            return torch.mm(self.St, m)
        return m.new_zeros(self.num_atoms, m.size(1)).index_add_(0, self.src, m)

    def force(self, grad_vec: Tensor) -> Tensor:
        r"""Forces from :math:`\partial E/\partial \mathbf{vec}` per edge ``[E, 3]``."""
        if self.dense:
            return torch.mm(self.minus_At, grad_vec)
        out = grad_vec.new_zeros(self.num_atoms, 3)
        return out.index_add_(0, self.dst, grad_vec).index_add_(0, self.src, grad_vec, alpha=-1.0)
