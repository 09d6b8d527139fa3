r"""A SchNetPack 2 SchNet potential -> our :class:`~pyg_schnet.SchNet`.

What converts (read from SchNetPack 2.1's source): a ``schnetpack.model.NeuralNetworkPotential``
whose input modules are ``PairwiseDistances`` (and optionally ``Strain``), whose representation is
``schnetpack.representation.SchNet``, whose outputs are one ``schnetpack.atomistic.Atomwise`` energy
(and optionally ``Forces`` of that energy), with post-processors ``CastTo64`` / ``CastTo32``,
``AddOffsets`` of the energy (extensive: a mean per atom and/or atom references) and
``ScaleProperty`` of the energy (and of the forces by the same factor). Term by term:

- ``nn.Embedding(100, F)`` -> ours (``max_z`` = its rows);
- ``GaussianRBF(n_rbf, cutoff, start)``: :math:`\exp(-\tfrac{1}{2 w^2}(d - \mu_k)^2)` with widths
  :math:`w` = the spacing -> ``gamma`` :math:`= 1 / (2 w^2)`, ``rbf_start`` / ``rbf_stop`` its first
  and last centre;
- ``CosineCutoff(r_c)`` -> ``cutoff = r_c`` (the neighbour list a SchNetPack user builds at
  :math:`\ge r_c` plays no role: beyond :math:`r_c` the cosine cutoff is zero);
- ``SchNetInteraction``: ``f2out(cfconv(in2f(x)))`` with ``f2out = Dense(act), Dense`` and a filter
  network ``Dense(act), Dense`` -> our block with ``filter_activation=False``; ``in2f`` has no bias;
  shared interactions (``shared_interactions=True``) become equal copies in each block;
- ``Atomwise`` with one hidden layer ``Dense(F, H, act), Dense(H, 1)`` -> our head with
  ``output_hidden = H`` (and ``head_activation="silu"`` for SchNetPack's default SiLU ``act``);
  post-processing :math:`E \to s E + \sum_i (\mu + E^{\text{ref}}_{Z_i})` ->
  ``std = s``, ``mean = mu``, ``atomref``.

Every other activation must be SchNetPack's shifted softplus (the function ``shifted_softplus``, or its
``ShiftedSoftplus`` module with :math:`\alpha = \beta = 1`), which is ours. Refused
(:class:`~pyg_schnet.models.convert.common.NotConvertibleError`), each naming the part:
a head with other than one hidden layer, electronic embeddings, another nuclear embedding, radial
basis or cutoff function, trained (non-uniform) Gaussian centres or unequal widths, an averaged
(``aggregation_mode="avg"``) or per-atom-only output, other output modules or post-processors,
intensive offsets, and forces scaled differently from their energy.

SchNetPack's model files (``best_model``) are pickled modules: loading one needs ``schnetpack``
importable (:func:`import_schnetpack`).
"""

from __future__ import annotations

import math
import sys
import typing
import warnings
from types import ModuleType
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor, nn

from pyg_schnet.models.convert.common import (
    centre_options,
    check_energy_unit,
    copy_dense,
    gaussian_grid,
    module_dtype,
    new_model,
    require,
    set_energy_scale,
)
from pyg_schnet.models.schnet import SchNet


def import_schnetpack() -> ModuleType:
    """``schnetpack``, imported; :class:`ImportError` saying how to get it when it cannot be.

    SchNetPack 2.1 imports ``torch.utils.data.dataloader.T_co``, a name torch 2.13 no longer has:
    when that is the only problem, the name is defined (a covariant ``TypeVar``, what it was) before
    the import is retried (as ``benchmarks/harness/schnetpack_import.py`` does for the peer benchmarks).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import schnetpack

            return schnetpack
        except ImportError as exc:
            if "T_co" not in str(exc):
                raise ImportError(
                    f"schnetpack cannot be imported ({exc}); converting a SchNetPack model needs it in this "
                    "Python (it does not install next to torch 2.13: see docs/benchmarks.md, 'SchNetPack side "
                    "environment')"
                ) from exc
            import torch.utils.data.dataloader as dataloader

            dataloader.T_co = typing.TypeVar("T_co", covariant=True)  # type: ignore[attr-defined]
            for name in [m for m in sys.modules if m == "schnetpack" or m.startswith("schnetpack.")]:
                del sys.modules[name]
            import schnetpack

            return schnetpack


def _is_shifted_softplus(activation: Any, spk: ModuleType) -> bool:
    """Whether ``activation`` computes :math:`\\mathrm{softplus}(x) - \\ln 2` (SchNetPack's function,
    or its module with alpha = beta = 1)."""
    if activation is spk.nn.activations.shifted_softplus:
        return True
    module = getattr(spk.nn.activations, "ShiftedSoftplus", None)
    if module is not None and type(activation) is module:
        return bool((activation.alpha == 1).all()) and bool((activation.beta == 1).all())
    return False


def _name(activation: Any) -> str:
    if isinstance(activation, nn.Module):
        return type(activation).__name__
    return f"{getattr(activation, '__module__', '')}.{getattr(activation, '__name__', repr(activation))}"


def _is_silu(activation: Any) -> bool:
    """Whether ``activation`` is SiLU (SchNetPack 2's default ``Atomwise`` activation)."""
    return activation is torch.nn.functional.silu or type(activation) is nn.SiLU


def _dense(
    layer: Any, spk: ModuleType, where: str, activated: bool, silu: bool = False
) -> Tuple[Tensor, Optional[Tensor]]:
    """Weight and bias of a SchNetPack ``Dense`` layer, checking its activation (the shifted softplus
    when ``activated``, or SiLU where ``silu`` allows it; none otherwise)."""
    require(type(layer) is spk.nn.Dense, f"{where} is a {type(layer).__name__}, not schnetpack.nn.Dense")
    activation = layer.activation
    if activated:
        if silu and _is_silu(activation):
            return layer.weight, layer.bias
        require(
            _is_shifted_softplus(activation, spk),
            f"{where} has activation {_name(activation)}; ours is the shifted softplus",
        )
    else:
        require(type(activation) is nn.Identity, f"{where} has activation {_name(activation)}; expected none")
    return layer.weight, layer.bias


def _energy_outputs(model: Any, spk: ModuleType) -> Tuple[Any, Optional[Any]]:
    """The ``Atomwise`` energy module and the ``Forces`` module (or ``None``) of ``model``."""
    atomwise: List[Any] = []
    forces: List[Any] = []
    for i, module in enumerate(model.output_modules):
        if type(module) is spk.atomistic.Atomwise:
            atomwise.append(module)
        elif type(module) is spk.atomistic.Forces:
            forces.append(module)
        else:
            require(
                False,
                f"output_modules[{i}] is a {type(module).__name__}: only an Atomwise energy and its Forces convert",
            )
    require(len(atomwise) == 1, f"{len(atomwise)} Atomwise outputs: exactly one (the energy) converts")
    require(len(forces) <= 1, f"{len(forces)} Forces outputs: at most one converts")
    energy = atomwise[0]
    force = forces[0] if forces else None
    if force is not None:
        require(
            force.energy_key == energy.output_key,
            f"Forces differentiates {force.energy_key!r}, but the Atomwise output is {energy.output_key!r}",
        )
    return energy, force


def _postprocessing(model: Any, spk: ModuleType, energy_key: str, force_key: Optional[str]):
    r"""``(s, mu, atomref)`` of the post-processing :math:`E \to s E + \sum_i (\mu + E^{\text{ref}}_{Z_i})`."""
    scale, mean = 1.0, 0.0
    atomref: Optional[Tensor] = None
    force_scale = 1.0
    if not getattr(model, "do_postprocessing", True):
        return scale, mean, atomref
    trn = spk.transform
    casts = tuple(getattr(trn, name) for name in ("CastMap", "CastTo32", "CastTo64") if hasattr(trn, name))
    for i, pp in enumerate(model.postprocessors):
        where = f"postprocessors[{i}] ({type(pp).__name__})"
        if isinstance(pp, casts):
            continue  # a dtype cast
        if type(pp) is trn.AddOffsets:
            if pp._property != energy_key:
                continue  # an output this conversion does not carry
            require(pp.is_extensive, f"{where}: offsets of an intensive energy (is_extensive=False) do not convert")
            if pp.add_mean:
                mean += float(pp.mean.detach().flatten()[0])
            if pp.add_atomrefs:
                ref = pp.atomref.detach().to(torch.float64).flatten()
                atomref = ref.clone() if atomref is None else _add_refs(atomref, ref)
            continue
        if type(pp) is trn.ScaleProperty:
            factor = float(pp.scale.detach().flatten()[0])
            require(pp.input_key == pp.output_key, f"{where}: scales {pp.input_key!r} into {pp.output_key!r}")
            if pp.input_key == energy_key:
                scale, mean = scale * factor, mean * factor
                atomref = None if atomref is None else atomref * factor
            elif force_key is not None and pp.input_key == force_key:
                force_scale *= factor
            continue
        require(False, f"{where}: only CastTo64/CastTo32, AddOffsets and ScaleProperty post-processors convert")
    if force_key is not None:
        require(
            math.isclose(force_scale, scale, rel_tol=1e-12),
            f"post-processing scales the energy by {scale} but the forces by {force_scale}: the model's forces are "
            "not the gradient of its energy, which ours always are",
        )
    return scale, mean, atomref


def _add_refs(a: Tensor, b: Tensor) -> Tensor:
    out = torch.zeros(max(a.numel(), b.numel()), dtype=torch.float64)
    out[: a.numel()] += a
    out[: b.numel()] += b
    return out


def from_schnetpack(model: nn.Module, *, energy_unit: str, dtype: Optional[torch.dtype] = None) -> SchNet:
    """Our :class:`~pyg_schnet.SchNet` computing the energy (and forces) of a SchNetPack 2 SchNet potential.

    Args:
        model: a ``schnetpack.model.NeuralNetworkPotential`` (e.g. ``torch.load(best_model,
            weights_only=False)``) as the module docstring describes.
        energy_unit: the unit of its energy output (SchNetPack model files do not record it; a
            SchNetPack data set's ``property_units`` say it, e.g. ``"eV"`` or ``"kcal/mol"``); becomes
            ``model.units``.
        dtype: of the converted model (default: that of the source's parameters).

    Returns:
        a :class:`SchNet` in eval mode, ``filter_activation=False``, with ``units`` set and no
        ``training_domain``; its energies are the Atomwise output after post-processing (the key
        ``Atomwise.output_key``, e.g. ``"energy"``), its forces minus their gradient, as SchNetPack's ``Forces``.

    Raises:
        NotConvertibleError: a part our model cannot compute exactly (module docstring).
        ValueError: no ``energy_unit``.
    """
    energy_unit = check_energy_unit(energy_unit, "SchNetPack")
    spk = import_schnetpack()
    require(
        type(model) is spk.model.NeuralNetworkPotential,
        f"the model is a {type(model).__module__}.{type(model).__qualname__}, not "
        "schnetpack.model.NeuralNetworkPotential",
    )
    src: Any = model
    for i, module in enumerate(src.input_modules):
        require(
            type(module) in (spk.atomistic.PairwiseDistances, spk.atomistic.Strain),
            f"input_modules[{i}] is a {type(module).__name__}: only PairwiseDistances (and Strain) convert",
        )
    rep = src.representation
    require(
        type(rep) is spk.representation.SchNet,
        f"the representation is a {type(rep).__name__}, not schnetpack.representation.SchNet",
    )
    require(len(rep.electronic_embeddings) == 0, "electronic embeddings (charge / spin) are not convertible")
    require(
        type(rep.embedding) is nn.Embedding,
        f"the nuclear embedding is a {type(rep.embedding).__name__}, not a torch.nn.Embedding",
    )
    rbf = rep.radial_basis
    require(
        type(rbf) is spk.nn.GaussianRBF,
        f"the radial basis is a {type(rbf).__name__}, not schnetpack.nn.GaussianRBF",
    )
    grid = gaussian_grid(rbf.offsets, "representation.radial_basis.offsets")
    widths = rbf.widths.detach().to(torch.float64).flatten()
    require(
        bool((widths == widths[0]).all()) and float(widths[0]) > 0,
        "representation.radial_basis.widths are not all equal and positive (trained widths?): ours share one width",
    )
    require(
        type(rep.cutoff_fn) is spk.nn.CosineCutoff,
        f"the cutoff function is a {type(rep.cutoff_fn).__name__}, not schnetpack.nn.CosineCutoff",
    )
    cutoff = float(rep.cutoff_fn.cutoff.detach().flatten()[0])
    energy, force = _energy_outputs(src, spk)
    require(
        energy.aggregation_mode == "sum",
        f"Atomwise aggregation_mode {energy.aggregation_mode!r}: our energy sums atom contributions ('sum')",
    )
    require(energy.n_out == 1, f"Atomwise n_out={energy.n_out}: an energy has one output")
    outnet = energy.outnet
    require(
        type(outnet) is nn.Sequential and len(outnet) == 2,
        f"the Atomwise network has {len(outnet) if isinstance(outnet, nn.Sequential) else '?'} layers; ours has "
        "one hidden layer (Atomwise(..., n_layers=2))",
    )
    silu_head = _is_silu(outnet[0].activation) if type(outnet[0]) is spk.nn.Dense else False
    head_hidden = _dense(outnet[0], spk, "Atomwise.outnet[0]", activated=True, silu=True)
    head_out = _dense(outnet[1], spk, "Atomwise.outnet[1]", activated=False)
    blocks = list(rep.interactions)
    config = dict(
        hidden_channels=rep.n_atom_basis,
        num_filters=rep.n_filters,
        num_interactions=len(blocks),
        num_gaussians=grid["num_gaussians"],
        rbf_start=grid["rbf_start"],
        rbf_stop=grid["rbf_stop"],
        gamma=0.5 / float(widths[0]) ** 2,
        cutoff=cutoff,
        max_z=rep.embedding.num_embeddings,
        output_hidden=int(head_hidden[0].shape[0]),
        filter_activation=False,
        **({"head_activation": "silu"} if silu_head else {}),
        **centre_options(rbf.offsets, grid["rbf_start"], grid["rbf_stop"], int(grid["num_gaussians"])),
    )
    ours = new_model(config, dtype or module_dtype(rep, "SchNetPack representation"), energy_unit)
    with torch.no_grad():
        ours.representation.embedding.weight.copy_(rep.embedding.weight)
        for l, (theirs, block) in enumerate(zip(blocks, ours.representation.blocks)):
            where = f"representation.interactions[{l}]"
            require(
                type(theirs) is spk.representation.SchNetInteraction,
                f"{where} is a {type(theirs).__name__}, not SchNetInteraction",
            )
            filters, f2out = theirs.filter_network, theirs.f2out
            require(len(filters) == 2 and len(f2out) == 2, f"{where}: filter network or f2out is not two layers")
            net = block.conv.filter_network
            copy_dense(block.in2filter, *_dense(theirs.in2f, spk, f"{where}.in2f", activated=False), f"{where}.in2f")
            copy_dense(net.first, *_dense(filters[0], spk, f"{where}.filter_network[0]", True), f"{where}.filter[0]")
            copy_dense(net.second, *_dense(filters[1], spk, f"{where}.filter_network[1]", False), f"{where}.filter[1]")
            copy_dense(block.filter2out, *_dense(f2out[0], spk, f"{where}.f2out[0]", True), f"{where}.f2out[0]")
            copy_dense(block.out, *_dense(f2out[1], spk, f"{where}.f2out[1]", False), f"{where}.f2out[1]")
        copy_dense(ours.head.hidden_layer, *head_hidden, "Atomwise.outnet[0]")
        copy_dense(ours.head.output_layer, *head_out, "Atomwise.outnet[1]")
    scale, mean, atomref = _postprocessing(src, spk, energy.output_key, None if force is None else force.force_key)
    set_energy_scale(ours, scale, mean, atomref, "SchNetPack post-processing (ScaleProperty)")
    return ours
