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

The fast path is on by default; :func:`reference_path` (a context manager) or
:func:`set_fast_path` select the plain modules, e.g. to compare the two.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
from torch import Tensor

from .activations import ShiftedSoftplus, shifted_softplus
from .cfconv import CFConv, FilterNetwork
from .cutoff import CosineCutoff
from .dense import Dense
from .radial import GaussianRBF

#: Gaussians below this value are dropped by the window (exact zeros in float32, see module docstring).
NEGLIGIBLE = torch.finfo(torch.float32).tiny
_LOG_NEGLIGIBLE = math.log(NEGLIGIBLE)

_FAST_PATH = True


def fast_path_enabled() -> bool:
    """Whether :class:`~pyg_schnet.models.SchNetRepresentation` uses the fused filters (default ``True``)."""
    return _FAST_PATH


def set_fast_path(enabled: bool) -> None:
    """Select the fused filters (``True``, the default) or the reference modules (``False``) globally."""
    global _FAST_PATH
    _FAST_PATH = bool(enabled)


@contextmanager
def reference_path() -> Iterator[None]:
    """Run the code inside the ``with`` block on the reference modules (plain :class:`GaussianRBF` and
    :class:`FilterNetwork` per block), then restore the previous setting."""
    previous = _FAST_PATH
    set_fast_path(False)
    try:
        yield
    finally:
        set_fast_path(previous)


def fusable(rbf: object, convs: Sequence[CFConv]) -> bool:
    """Whether :func:`fused_filters` computes what the modules would: a plain :class:`GaussianRBF` and
    unmodified :class:`FilterNetwork` s (dense layers with biases and shifted softplus) and cutoffs, so
    a model whose modules were replaced or subclassed runs its own modules."""
    if type(rbf) is not GaussianRBF:
        return False
    for conv in convs:
        net = conv.filter_network
        if type(net) is not FilterNetwork or len(net) != 4 or type(conv).filters is not CFConv.filters:
            return False
        if conv.cutoff is not None and type(conv.cutoff) is not CosineCutoff:
            return False
        if not all(type(net[i]) is Dense and net[i].bias is not None for i in (0, 2)):
            return False
        if not all(type(net[i]) is ShiftedSoftplus for i in (1, 3)):
            return False
    return True


def gaussian_window(rbf: GaussianRBF, distances: Tensor) -> Tuple[int, int]:
    r"""Indices ``lo, hi`` of the centres that can be non-negligible for some distance in ``distances``:
    every centre outside ``[lo, hi)`` is farther than :math:`w = \sqrt{-\ln t/\gamma}` from all of them.

    One host synchronisation (the distance range). A margin of one centre on each side absorbs rounding.
    """
    K = rbf.num_gaussians
    if K < 2 or distances.numel() == 0:
        return 0, K
    width = math.sqrt(-_LOG_NEGLIGIBLE / rbf.gamma)
    spacing = (rbf.stop - rbf.start) / (K - 1)
    if not spacing > 0:
        return 0, K
    d_min, d_max = torch.stack(torch.aminmax(distances.detach())).tolist()
    lo = math.floor((d_min - width - rbf.start) / spacing) - 1
    hi = math.ceil((d_max + width - rbf.start) / spacing) + 2
    return min(max(lo, 0), K), min(max(hi, 0), K)


def windowed_expansion(rbf: GaussianRBF, distances: Tensor, lo: int, hi: int) -> Tensor:
    """Columns ``lo:hi`` of ``rbf(distances)``, with the same underflow mask as :class:`GaussianRBF`."""
    diff = distances.unsqueeze(-1) - rbf.centers[lo:hi].to(distances.dtype)
    exponent = -rbf.gamma * diff * diff
    underflow = exponent < math.log(torch.finfo(exponent.dtype).tiny)
    return torch.exp(exponent.masked_fill(underflow, -math.inf))


def fused_filters(rbf: GaussianRBF, convs: Sequence[CFConv], distances: Tensor) -> List[Tensor]:
    r"""Filters :math:`W_l(d) f_c(d)` ``[P, F_l]`` of every cfconv in ``convs`` for the pair distances
    ``[P]`` (Angstrom): what ``conv.filters(distances, rbf(distances))`` returns for each, computed
    with the Gaussian window and one stacked first layer (see the module docstring)."""
    if not convs:
        return []
    lo, hi = gaussian_window(rbf, distances)
    expansion = windowed_expansion(rbf, distances, lo, hi)  # [P, K']
    firsts = [conv.filter_network[0] for conv in convs]
    weight = torch.cat([layer.weight[:, lo:hi] for layer in firsts], dim=0)  # [sum F_l, K']
    bias = torch.cat([layer.bias for layer in firsts], dim=0)
    hidden = shifted_softplus(torch.addmm(bias, expansion, weight.t()))  # [P, sum F_l]
    cutoffs: Dict[float, Tensor] = {}
    out = []
    # split, not slices: its backward is one concatenation instead of a zero-filled copy per block
    for conv, h in zip(convs, hidden.split([layer.out_features for layer in firsts], dim=1)):
        W = shifted_softplus(conv.filter_network[2](h))
        if conv.cutoff is not None:
            key = conv.cutoff.cutoff
            if key not in cutoffs:
                cutoffs[key] = conv.cutoff(distances).unsqueeze(-1)
            W = W * cutoffs[key]
        out.append(W)
    return out
