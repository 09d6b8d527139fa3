r"""PyTorch Geometric's ``torch_geometric.nn.models.SchNet`` -> our :class:`~pyg_schnet.SchNet`.

PyG's model (read from its source, torch-geometric 2.8) and ours, term by term:

- embedding ``Embedding(100, F, padding_idx=0)`` -> ours (``max_z`` = its rows);
- ``GaussianSmearing(0, cutoff, K)``: :math:`\exp(c (d - \mu_k)^2)` with :math:`c = -0.5 / \Delta\mu^2`
  -> ``gamma = -c``, ``rbf_start = 0``, ``rbf_stop = cutoff``;
- the cosine cutoff :math:`\tfrac12(\cos(\pi d / r_c) + 1)`, always on, on a radius graph of radius
  :math:`r_c` -> ``cutoff = r_c`` (our cosine cutoff on our radius graph);
- ``InteractionBlock``: ``lin(ssp(conv.lin2(cfconv(conv.lin1(x)))))`` with a filter network
  ``Linear, ssp, Linear`` -> ``out(ssp(filter2out(cfconv(in2filter(x)))))`` with
  ``filter_activation=False``; ``conv.lin1`` has no bias (ours: an exact zero bias);
- head ``lin2(ssp(lin1(h)))`` with ``hidden_channels // 2`` units -> ``output_hidden``;
  ``h * std + mean`` (when both are set), ``+ atomref(z)``, sum readout, times ``scale`` (when set) ->
  our ``std``, ``mean`` and ``atomref``, all multiplied by ``scale``;
- PyG's shifted softplus subtracts :math:`\ln 2` rounded to float32: the difference
  (:math:`1.9 \cdot 10^{-9}`) is folded into the next layer's bias
  (:func:`~pyg_schnet.models.convert.common.fold_activation_shift`).

``radius_graph(..., max_num_neighbors=32)`` keeps at most that many neighbours per atom, and *which*
ones depends on the search order; ours never drops a neighbour. The two agree exactly wherever no
atom has more than ``max_num_neighbors`` neighbours within the cutoff, so by default the converted
model gets that number as its guard (``SchNetConfig.max_num_neighbors``): a structure where PyG would
have dropped neighbours raises a :class:`ValueError` instead of giving a different number.
``neighbor_guard=False`` drops the guard: every neighbour counts (what PyG's model would compute without
truncation), which differs from PyG's output exactly where PyG truncates.

``readout="mean"`` (an intensive property) -> ``output="intensive"`` (the mean of the same atom
contributions).

Refused (:class:`~pyg_schnet.models.convert.common.NotConvertibleError`): ``dipole=True`` (PyG's
dipole uses unconstrained charges about the centre of mass; ours are constrained to the total
charge), a readout other than ``"add"`` or ``"mean"``, ``"mean"`` with an ``atomref``, a custom
``interaction_graph``, a subclass of PyG's SchNet (it may compute something else), modules replaced
inside it, and a zero ``std`` or ``scale``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from pyg_schnet.models.convert.common import (
    centre_options,
    check_energy_unit,
    copy_dense,
    fold_activation_shift,
    gaussian_grid,
    module_dtype,
    new_model,
    require,
    set_energy_scale,
)
from pyg_schnet.models.schnet import SchNet

#: PyG's constructor defaults (torch_geometric.nn.models.SchNet), used for a state_dict's missing
#: hyper-parameters.
PYG_DEFAULTS = dict(
    hidden_channels=128,
    num_filters=128,
    num_interactions=6,
    num_gaussians=50,
    cutoff=10.0,
    max_num_neighbors=32,
    readout="add",
    dipole=False,
    mean=None,
    std=None,
)
#: The hyper-parameters :func:`from_pyg` takes with a state_dict (those of PyG's constructor).
PYG_HYPER = (*PYG_DEFAULTS, "interaction_graph", "atomref")


def _pyg():
    try:
        from torch_geometric.nn.models import schnet
    except ImportError as exc:  # pragma: no cover - torch_geometric is a dependency
        raise ImportError(f"converting a PyG SchNet needs torch_geometric ({exc})") from exc
    return schnet


def pyg_module_of_state_dict(state_dict: Mapping[str, Tensor], **hyper: Any) -> nn.Module:
    """A PyG ``SchNet`` holding ``state_dict``: sizes from the tensors' shapes (checked against
    ``hyper`` where given), the other constructor arguments from ``hyper`` with PyG's defaults
    (:data:`PYG_DEFAULTS`; ``mean`` and ``std`` are plain attributes, not in a state_dict)."""
    unknown = sorted(set(hyper) - set(PYG_HYPER))
    if unknown:
        raise TypeError(f"unknown PyG SchNet hyper-parameters: {unknown}; known: {list(PYG_HYPER)}")
    if hyper.get("interaction_graph") is not None:
        require(False, "interaction_graph: a custom interaction graph is not convertible (ours is a radius graph)")
    keys = set(state_dict)
    for needed in ("embedding.weight", "distance_expansion.offset", "lin1.weight", "lin2.weight"):
        require(needed in keys, f"state_dict: no {needed!r}; is it the state_dict of a torch_geometric SchNet?")
    sizes = dict(
        hidden_channels=int(state_dict["embedding.weight"].shape[1]),
        num_gaussians=int(state_dict["distance_expansion.offset"].numel()),
        num_interactions=len({k.split(".")[1] for k in keys if k.startswith("interactions.")}),
    )
    if sizes["num_interactions"]:
        sizes["num_filters"] = int(state_dict["interactions.0.mlp.0.weight"].shape[0])
    for name, value in sizes.items():
        given = hyper.get(name)
        require(
            given is None or int(given) == value,
            f"{name}={given} does not match the state_dict, whose tensors have {name}={value}",
        )
    args = {**PYG_DEFAULTS, **{k: v for k, v in hyper.items() if k != "atomref"}, **sizes}
    if "atomref.weight" in keys:
        args["atomref"] = state_dict.get("initial_atomref", state_dict["atomref.weight"])
    dtype = state_dict["embedding.weight"].dtype
    module = _pyg().SchNet(**args).to(dtype)
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"state_dict does not fit a PyG SchNet of {args}: {exc}") from exc
    return module


def from_pyg(
    source: Union[nn.Module, Mapping[str, Tensor]],
    *,
    energy_unit: str,
    neighbor_guard: bool = True,
    dtype: Optional[torch.dtype] = None,
    **hyper: Any,
) -> SchNet:
    """Our :class:`~pyg_schnet.SchNet` computing what a ``torch_geometric.nn.models.SchNet`` computes.

    Args:
        source: PyG's SchNet module, or its ``state_dict()`` with the constructor arguments in
            ``**hyper`` (``cutoff``, ``max_num_neighbors``, ``readout``, ``dipole``, ``mean``, ``std``;
            PyG's defaults for those not given; sizes are read from the tensors).
        energy_unit: the unit of the model's energies (PyG does not record it), a name of
            :mod:`ase.units` such as ``"eV"`` or ``"kcal/mol"``; becomes ``model.units``.
        neighbor_guard: keep PyG's ``max_num_neighbors`` as our guard (default: a structure where PyG
            would drop neighbours raises); ``False``: no guard (see the module docstring).
        dtype: of the converted model (default: that of the source's parameters).

    Returns:
        a :class:`SchNet` in eval mode, ``filter_activation=False``, with ``units`` set and no
        ``training_domain`` (PyG records none). Positions in Angstrom as PyG's.

    Raises:
        NotConvertibleError: a part our model cannot compute exactly (module docstring).
        ValueError: no ``energy_unit``; a state_dict that does not fit PyG's SchNet.
    """
    energy_unit = check_energy_unit(energy_unit, "PyG")
    schnet = _pyg()
    if isinstance(source, Mapping):
        source = pyg_module_of_state_dict(source, **hyper)
    elif hyper:
        raise TypeError(
            f"from_pyg(module) reads its hyper-parameters from the module; {sorted(hyper)} apply to a state_dict only"
        )
    require(
        type(source) is schnet.SchNet,
        f"the model is a {type(source).__module__}.{type(source).__qualname__}, not torch_geometric.nn.models.SchNet "
        "itself (a subclass may compute something else)",
    )
    src: Any = source
    require(not src.dipole, "dipole=True (the magnitude of a dipole moment) is not an energy model; not convertible")
    from torch_geometric.nn.aggr import MeanAggregation

    readout = type(src.readout).__name__
    intensive = type(src.readout) is MeanAggregation
    require(
        type(src.readout) is schnet.SumAggregation or intensive,
        f"readout {readout}: ours sums atom contributions (readout='add', output='extensive') or averages "
        "them (readout='mean', output='intensive')",
    )
    require(
        not (intensive and src.atomref is not None),
        "readout='mean' with an atomref: our intensive head (output='intensive') has no atom references",
    )
    graph = src.interaction_graph
    require(
        type(graph) is schnet.RadiusInteractionGraph,
        f"interaction_graph is a {type(graph).__name__}: a custom interaction graph is not convertible "
        "(ours is a radius graph at the cutoff)",
    )
    cutoff = float(src.cutoff)
    require(
        float(graph.cutoff) == cutoff,
        f"the radius graph's cutoff {graph.cutoff} differs from the model's cutoff {cutoff}",
    )
    rbf = src.distance_expansion
    require(type(rbf) is schnet.GaussianSmearing, f"distance_expansion is a {type(rbf).__name__}, not GaussianSmearing")
    grid = gaussian_grid(rbf.offset, "distance_expansion.offset")
    require(
        grid["rbf_start"] == 0.0 and abs(grid["rbf_stop"] - cutoff) <= 1e-6 * cutoff,
        f"distance_expansion: centres on [{grid['rbf_start']}, {grid['rbf_stop']}], PyG's are on [0, cutoff={cutoff}]",
    )
    require(float(rbf.coeff) < 0, f"distance_expansion.coeff {rbf.coeff}: expected a negative exponent factor")
    config = dict(
        hidden_channels=src.embedding.embedding_dim,
        num_filters=src.num_filters,
        num_interactions=len(src.interactions),
        num_gaussians=grid["num_gaussians"],
        rbf_start=0.0,
        rbf_stop=cutoff,
        gamma=-float(rbf.coeff),
        cutoff=cutoff,
        max_z=src.embedding.num_embeddings,
        output_hidden=src.lin1.out_features,
        max_num_neighbors=int(graph.max_num_neighbors) if neighbor_guard else None,
        filter_activation=False,
        **({"output": "intensive"} if intensive else {}),
        **centre_options(rbf.offset, 0.0, cutoff, int(grid["num_gaussians"])),
    )
    model = new_model(config, dtype or module_dtype(src, "PyG SchNet"), energy_unit)
    _copy_weights(src, model, schnet)
    _copy_standardization(src, model)
    return model


@torch.no_grad()
def _copy_weights(src: Any, model: SchNet, schnet: Any) -> None:
    rep = model.representation
    rep.embedding.weight.copy_(src.embedding.weight)
    for l, (theirs, ours) in enumerate(zip(src.interactions, rep.blocks)):
        where = f"interactions[{l}]"
        require(type(theirs) is schnet.InteractionBlock, f"{where} is a {type(theirs).__name__}, not PyG's block")
        mlp, conv = theirs.mlp, theirs.conv
        require(
            type(mlp) is nn.Sequential
            and len(mlp) == 3
            and type(mlp[0]) is nn.Linear
            and type(mlp[1]) is schnet.ShiftedSoftplus
            and type(mlp[2]) is nn.Linear,
            f"{where}.mlp is not Linear -> ShiftedSoftplus -> Linear",
        )
        require(type(conv) is schnet.CFConv and conv.nn is mlp, f"{where}.conv is not PyG's CFConv of its mlp")
        require(float(conv.cutoff) == rep.cutoff, f"{where}.conv.cutoff {conv.cutoff} differs from {rep.cutoff}")
        require(type(theirs.act) is schnet.ShiftedSoftplus, f"{where}.act is a {type(theirs.act).__name__}")
        require(type(theirs.lin) is nn.Linear, f"{where}.lin is a {type(theirs.lin).__name__}")
        net = ours.conv.filter_network
        copy_dense(ours.in2filter, conv.lin1.weight, conv.lin1.bias, f"{where}.conv.lin1")
        copy_dense(net.first, mlp[0].weight, mlp[0].bias, f"{where}.mlp[0]")
        copy_dense(net.second, mlp[2].weight, mlp[2].bias, f"{where}.mlp[2]")
        fold_activation_shift(net.second, mlp[1].shift)
        copy_dense(ours.filter2out, conv.lin2.weight, conv.lin2.bias, f"{where}.conv.lin2")
        copy_dense(ours.out, theirs.lin.weight, theirs.lin.bias, f"{where}.lin")
        fold_activation_shift(ours.out, theirs.act.shift)
    require(type(src.act) is schnet.ShiftedSoftplus, f"act (of the head) is a {type(src.act).__name__}")
    copy_dense(model.head.hidden_layer, src.lin1.weight, src.lin1.bias, "lin1")
    copy_dense(model.head.output_layer, src.lin2.weight, src.lin2.bias, "lin2")
    fold_activation_shift(model.head.output_layer, src.act.shift)


def _copy_standardization(src: Any, model: SchNet) -> None:
    standardised = src.mean is not None and src.std is not None  # PyG applies them only together
    mean = float(src.mean) if standardised else 0.0
    std = float(src.std) if standardised else 1.0
    scale = 1.0 if src.scale is None else float(src.scale)
    atomref: Optional[Tensor] = None
    if src.atomref is not None:
        require(
            type(src.atomref) is nn.Embedding and src.atomref.embedding_dim == 1,
            "atomref is not an Embedding(max_z, 1)",
        )
        atomref = src.atomref.weight.detach()[:, 0] * scale
    set_energy_scale(model, std * scale, mean * scale, atomref, "PyG SchNet (std * scale)")
