r"""Training several heads: which outputs a model has, their targets in the data, their weights, and the
check that a model's primary output suits the physics of its target.

A SchNet's outputs (:attr:`pyg_schnet.SchNet.head_kinds`) are ``"energy"`` (the primary output, whose
target is ``data.energy``) and its extra heads (``config.extra_heads``), whose targets are read from
``data.<name>``: one value per structure (``[1]`` or ``[1, 1]``; a batch holds ``[G]``) for the scalar
kinds, a vector ``[1, 3]`` (``[G, 3]``) for ``"dipole"``. Dipole targets are in e*Angstrom (the unit
the model's dipole heads compute in; 1 Debye = ``ase.units.Debye`` e*Angstrom).

The loss of a molecule :math:`m` adds to Eq. 5, for each extra head :math:`h` with weight :math:`w_h`,

.. math::
    w_h\, \lVert \mathbf y_{h,m} - \hat{\mathbf y}_{h,m} \rVert^2

(summed over the three components of a dipole): a squared error in the target's own unit, like the
energy term, so :math:`w_h` carries the ratio of units (e.g. (kcal/mol)^2 per (e*Angstrom)^2). The
heads' standardisation (:mod:`pyg_schnet.train.standardize`) makes the networks' raw outputs of order
one; the loss itself is not divided by the targets' spread, so a weight of 1 means "an error of one
unit here counts as one unit of energy error".
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Mapping, Optional

from torch import Tensor, nn

#: Kinds whose outputs are vectors ``[G, 3]`` (the others are ``[G]``).
VECTOR_KINDS = ("dipole",)


class TargetKindWarning(UserWarning):
    """A model's primary output (``config.output``) does not suit its target's physics as the data set
    declares it (``dataset.target_kind``): e.g. an intensive target (HOMO, LUMO, gap) with the sum
    pooling of an extensive head, which makes the prediction grow with the molecule's size."""


def base_dataset(dataset: object) -> object:
    """The data set under any :class:`torch.utils.data.Subset` wrappers."""
    base = dataset
    while hasattr(base, "dataset") and hasattr(base, "indices"):
        base = base.dataset
    return base


def target_kind_of(dataset: object) -> Optional[str]:
    """The physics of ``data.energy`` the data set declares (``target_kind``: ``"extensive"``,
    ``"intensive"``, ``"dipole_moment"``), looked up through subsets; ``None`` when it declares none (a
    list of ``Data``)."""
    kind = getattr(base_dataset(dataset), "target_kind", None)
    return kind if isinstance(kind, str) and kind else None


def target_unit_of(dataset: object) -> Optional[str]:
    """The unit of ``data.energy`` for a target that is no energy (``dataset.target_unit``, e.g. QM9's
    ``"e*Angstrom"`` for mu), looked up through subsets; ``None`` when the data set declares none."""
    unit = getattr(base_dataset(dataset), "target_unit", None)
    return unit if isinstance(unit, str) and unit else None


_WHAT = {
    "extensive": "a sum of atom contributions (output='extensive')",
    "intensive": "a mean of atom contributions (output='intensive')",
    "dipole_moment": "the norm of a dipole of latent charges (output='dipole_moment')",
}


def check_target_kind(model: nn.Module, dataset: object) -> Optional[str]:
    """Warn (:class:`TargetKindWarning`) when ``model.settings.output`` differs from the training set's
    :func:`target_kind_of`; return the message (``None`` when they agree or either is unknown)."""
    settings = getattr(model, "settings", None)
    output = getattr(settings, "output", None)
    kind = target_kind_of(dataset)
    if output is None or kind is None or output == kind:
        return None
    message = (
        f"the training targets are {kind} (the data set says target_kind={kind!r}), but the model predicts "
        f"{_WHAT.get(output, repr(output))}: "
        + (
            "an intensive property (HOMO, LUMO, gap) summed over atoms grows with the molecule's size; "
            if kind == "intensive" and output == "extensive"
            else ""
        )
        + f"build the model with output={kind!r} (e.g. SchNet(output={kind!r}))"
    )
    warnings.warn(message, TargetKindWarning, stacklevel=3)
    return message


def extra_head_kinds(model: nn.Module) -> Dict[str, str]:
    """The extra heads of ``model`` by name and kind (``{}`` for the paper's model or a model without
    ``settings``)."""
    settings = getattr(model, "settings", None)
    return dict(getattr(settings, "extra_heads", ()) or ())


def resolve_head_weights(model: nn.Module, weights: Mapping[str, float]) -> Dict[str, float]:
    """The loss weight of every extra head of ``model``: ``weights[name]``, 1.0 for a head not named.

    Raises:
        ValueError: a weight for a head the model does not have (naming the heads it has).
    """
    kinds = extra_head_kinds(model)
    unknown = sorted(set(weights) - set(kinds))
    if unknown:
        raise ValueError(
            f"TrainConfig.head_weights names {unknown}, which are not extra heads of the model "
            f"(its extra heads: {sorted(kinds) or 'none'}; build it with SchNet(extra_heads=((name, kind), ...)))"
        )
    return {name: float(weights.get(name, 1.0)) for name in kinds}


def check_head_weights(owner: str, weights: object) -> None:
    """Raise :class:`ValueError` unless ``weights`` maps names to finite numbers ``>= 0``."""
    if not isinstance(weights, Mapping):
        raise ValueError(f"{owner}: head_weights must be a dict of head name -> weight, got {weights!r}")
    for name, weight in weights.items():
        ok = isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)
        if not isinstance(name, str) or not ok or weight < 0:
            raise ValueError(
                f"{owner}: head_weights[{name!r}] must be a finite number >= 0 for a head name, got {weight!r}"
            )


def head_target(batch: object, name: str, kind: str, num_graphs: int) -> Tensor:
    """The target of head ``name`` in a batch: ``batch.<name>`` as ``[G]`` (scalar kinds) or ``[G, 3]``
    (``"dipole"``).

    Raises:
        ValueError: the batch has no such field, or it does not hold one value (three for a dipole)
            per structure.
    """
    value = getattr(batch, name, None)
    if not isinstance(value, Tensor):
        raise ValueError(
            f"head {name!r} ({kind}) is trained on data.{name}, but the examples have no field {name!r}: "
            f"give every structure its target (data.{name} = tensor of shape "
            f"{'[1, 3]' if kind in VECTOR_KINDS else '[1]'}) or set TrainConfig.head_weights[{name!r}] = 0"
        )
    width = 3 if kind in VECTOR_KINDS else 1
    if value.numel() != num_graphs * width:
        raise ValueError(
            f"data.{name} holds {value.numel()} values for {num_graphs} structure(s); head {name!r} ({kind}) "
            f"needs {width} per structure ({'[1, 3]' if width == 3 else '[1]'} per example)"
        )
    return value.reshape(num_graphs, 3) if width == 3 else value.reshape(num_graphs)


def squared_errors(pred: Tensor, true: Tensor) -> Tensor:
    """Per-structure squared error ``[G]`` in float64 (summed over the components of vectors)."""
    diff = pred.double() - true.double()
    return diff.square().sum(dim=-1) if diff.dim() > 1 else diff.square()


def head_loss(
    outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor], weights: Mapping[str, float]
) -> Optional[Tensor]:
    """:math:`\\sum_h w_h \\lVert y_h - \\hat y_h \\rVert^2` per structure ``[G]`` (float64) over the heads
    of ``weights`` with a non-zero weight, ``None`` when there are none."""
    total: Optional[Tensor] = None
    for name, weight in weights.items():
        if weight == 0:
            continue
        term = weight * squared_errors(outputs[name], targets[name])
        total = term if total is None else total + term
    return total
