r"""Fast path of SchNet's filters: the Gaussian window and one first filter layer for all blocks.

The reference path (:class:`~pyg_schnet.nn.GaussianRBF` -> each block's
:class:`~pyg_schnet.nn.FilterNetwork`) expands every distance in all :math:`K` Gaussians and multiplies
the :math:`(P, K)` expansion by each block's first filter layer. This module computes the same filters
with less work, in plain differentiable PyTorch operations (so forces and the double backward of force
training come from autograd exactly as on the reference path):

1. **Gaussian window.** A Gaussian :math:`e_k(d) = \exp(-\gamma (d - \mu_k)^2)` is below the
   smallest normal float32 number :math:`t` (``torch.finfo(torch.float32).tiny``, about
   :math:`1.2 \cdot 10^{-38}`) as soon as :math:`|d - \mu_k| > w = \sqrt{-\ln t / \gamma}`
   (2.95 Angstrom at :math:`\gamma = 10`). Only the centres within :math:`w` of the batch's distance
   range :math:`[d_{\min}, d_{\max}]` are computed, and only those columns of the first filter layers
   are used: about 70 of the paper's 301 centres for a small molecule.
2. **One first layer for all blocks.** The filter networks of all interaction blocks read the same
   expansion, so their first dense layers are one matrix product with the stacked (windowed) weights.

Exactness: in float32 the reference sets these Gaussians to exactly zero (see
:class:`~pyg_schnet.nn.GaussianRBF`), so the window drops nothing, and the values in the window get
the same underflow mask. In float64 the dropped values are below :math:`t`; each changes a filter
pre-activation by less than :math:`t \max |W_1|`, some twenty orders of magnitude below float64's
resolution of an O(1) value. ``tests/nn/test_fast_paths.py`` checks energies, forces and the
parameter gradients of a force loss against the reference path (1e-10 in float64, 1e-5 relative in
float32).

Host synchronisation: the window's distance range is read from the device (one synchronisation per
call) unless the caller knows it on the host: ``fused_filters(..., distance_range=(d_min, d_max))``
(:meth:`pyg_schnet.graph.pairs.HostLayout.window_range`: the batch's pair distances computed from
positions still on the CPU, capped at the cutoff, beyond which the filters are zero; ``(0, inf)``
keeps every centre when nothing is known).

The fast path is on by default; the switch lives in :mod:`pyg_schnet.backend`
(:func:`~pyg_schnet.backend.reference_path`, a context manager, or
:func:`~pyg_schnet.backend.set_fast_path` select the plain modules for the process, e.g. to compare
the two; ``model.representation.fast_filters`` for one model).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.backend import reference_path, set_fast_path  # noqa: F401  (0.2 names)
from pyg_schnet.nn.activations import ShiftedSoftplus, shifted_softplus
from pyg_schnet.nn.cfconv import CFConv, FilterNetwork
from pyg_schnet.nn.cutoff import CosineCutoff
from pyg_schnet.nn.dense import Dense
from pyg_schnet.nn.radial import GaussianRBF, gaussians

#: Gaussians below this value are dropped by the window (exact zeros in float32, see module docstring).
NEGLIGIBLE = torch.finfo(torch.float32).tiny
_LOG_NEGLIGIBLE = math.log(NEGLIGIBLE)


def fast_path_enabled() -> bool:
    """Whether models use the fused filters by default (:data:`pyg_schnet.backend.FAST_FILTERS`)."""
    return backend.FAST_FILTERS


def fusable(rbf: object, convs: Sequence[CFConv]) -> bool:
    """Whether :func:`fused_filters` computes what the modules would: a plain :class:`GaussianRBF` and
    unmodified :class:`FilterNetwork` s (dense layers with biases and shifted softplus) and cutoffs, so
    a model whose modules were replaced or subclassed runs its own modules."""
    if type(rbf) is not GaussianRBF:
        return False
    for conv in convs:
        net = conv.filter_network
        if type(net) is not FilterNetwork or len(net) not in (3, 4) or type(conv).filters is not CFConv.filters:
            return False
        if conv.cutoff is not None and type(conv.cutoff) is not CosineCutoff:
            return False
        if not all(type(net[i]) is Dense and net[i].bias is not None for i in (0, 2)):
            return False
        if not all(type(net[i]) is ShiftedSoftplus for i in range(1, len(net), 2)):
            return False
    return True


def gaussian_width(gamma: float) -> float:
    r""":math:`w = \sqrt{-\ln t / \gamma}` (Angstrom): beyond it from its centre a Gaussian is below
    :data:`NEGLIGIBLE` (2.95 Angstrom at :math:`\gamma = 10`)."""
    return math.sqrt(-_LOG_NEGLIGIBLE / gamma)


def window_bounds(
    start: float, stop: float, num_gaussians: int, gamma: float, d_min: float, d_max: float
) -> Tuple[int, int]:
    """Indices ``lo, hi`` of the centres (``num_gaussians`` evenly spaced on ``[start, stop]``) within
    :func:`gaussian_width` of some distance in ``[d_min, d_max]``; a margin of one centre on each side
    absorbs rounding. Non-finite distances raise :class:`ValueError` or :class:`OverflowError`."""
    K = num_gaussians
    if K < 2:
        return 0, K
    spacing = (stop - start) / (K - 1)
    if not spacing > 0:
        return 0, K
    width = gaussian_width(gamma)
    lo = math.floor((d_min - width - start) / spacing) - 1
    hi = math.ceil((d_max + width - start) / spacing) + 2
    return min(max(lo, 0), K), min(max(hi, 0), K)


def distance_window(start: float, stop: float, num_gaussians: int, gamma: float, distances: Tensor) -> Tuple[int, int]:
    """:func:`window_bounds` for the range of ``distances``: all centres when there are no distances or
    fewer than two centres. One host synchronisation (the distance range)."""
    if num_gaussians < 2 or distances.numel() == 0:
        return 0, num_gaussians
    d_min, d_max = torch.stack(torch.aminmax(distances.detach())).tolist()
    return window_bounds(start, stop, num_gaussians, gamma, d_min, d_max)


def range_window(
    start: float, stop: float, num_gaussians: int, gamma: float, distance_range: Tuple[float, float]
) -> Tuple[int, int]:
    """:func:`window_bounds` for distances known (on the host) to lie in ``distance_range``
    ``(d_min, d_max)``: no device read. An infinite bound (nothing known) widens the window to every
    centre on that side."""
    d_min, d_max = (float(d) for d in distance_range)
    low = d_min if math.isfinite(d_min) else d_max
    high = d_max if math.isfinite(d_max) else low
    if not math.isfinite(low):
        return 0, num_gaussians
    lo, hi = window_bounds(start, stop, num_gaussians, gamma, low, high)
    return (lo if math.isfinite(d_min) else 0), (hi if math.isfinite(d_max) else num_gaussians)


def gaussian_window(
    rbf: GaussianRBF, distances: Tensor, distance_range: Optional[Tuple[float, float]] = None
) -> Tuple[int, int]:
    r"""Indices ``lo, hi`` of the centres of ``rbf`` that can be non-negligible for some distance in
    ``distances``: every centre outside ``[lo, hi)`` is farther than :math:`w = \sqrt{-\ln t/\gamma}`
    from all of them (:func:`distance_window`, one host synchronisation), or from every distance in
    ``distance_range`` when the caller knows it (:func:`range_window`, none)."""
    if distance_range is not None:
        return range_window(rbf.start, rbf.stop, rbf.num_gaussians, rbf.gamma, distance_range)
    return distance_window(rbf.start, rbf.stop, rbf.num_gaussians, rbf.gamma, distances)


def windowed_expansion(rbf: GaussianRBF, distances: Tensor, lo: int, hi: int) -> Tensor:
    """Columns ``lo:hi`` of ``rbf(distances)``, with the same underflow mask as :class:`GaussianRBF`."""
    return gaussians(distances.unsqueeze(-1) - rbf.centers[lo:hi].to(distances.dtype), rbf.gamma)


def fused_filters(
    rbf: GaussianRBF,
    convs: Sequence[CFConv],
    distances: Tensor,
    distance_range: Optional[Tuple[float, float]] = None,
) -> List[Tensor]:
    r"""Filters :math:`W_l(d) f_c(d)` ``[P, F_l]`` of every cfconv in ``convs`` for the pair distances
    ``[P]`` (Angstrom): what ``conv.filters(distances, rbf(distances))`` returns for each, computed
    with the Gaussian window and one stacked first layer (see the module docstring).

    ``distance_range`` ``(d_min, d_max)``: bounds of the distances whose filters matter, known on the
    host (:meth:`pyg_schnet.graph.HostLayout.window_range`); then the window reads nothing from the
    device. Distances outside it must have a zero filter (beyond every block's cutoff)."""
    if not convs:
        return []
    lo, hi = gaussian_window(rbf, distances, distance_range)
    expansion = windowed_expansion(rbf, distances, lo, hi)  # [P, K']
    firsts = [conv.filter_network.first for conv in convs]
    weight = torch.cat([layer.weight[:, lo:hi] for layer in firsts], dim=0)  # [sum F_l, K']
    bias = torch.cat([layer.bias for layer in firsts], dim=0)
    hidden = shifted_softplus(torch.addmm(bias, expansion, weight.t()))  # [P, sum F_l]
    cutoffs: Dict[float, Tensor] = {}
    out = []
    # split, not slices: its backward is one concatenation instead of a zero-filled copy per block
    for conv, h in zip(convs, hidden.split([layer.out_features for layer in firsts], dim=1)):
        W = conv.filter_network.second(h)
        if conv.filter_network.last_activation:
            W = shifted_softplus(W)
        if conv.cutoff is not None:
            key = conv.cutoff.cutoff
            if key not in cutoffs:
                cutoffs[key] = conv.cutoff(distances).unsqueeze(-1)
            W = W * cutoffs[key]
        out.append(W)
    return out
