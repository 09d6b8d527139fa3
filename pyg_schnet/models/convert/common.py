"""What the converters share: the error they raise, copying dense layers, the Gaussian grid check and
the head's standardisation."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from pyg_schnet.models.schnet import SchNet
from pyg_schnet.nn.activations import LN2
from pyg_schnet.nn.dense import Dense


class NotConvertibleError(ValueError):
    """A model (or a part of it) that our :class:`~pyg_schnet.SchNet` cannot compute exactly: the
    message names the part, what it is and what would be needed. Converting it anyway would change
    its predictions, so nothing is converted."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`NotConvertibleError` with ``message`` unless ``condition``."""
    if not condition:
        raise NotConvertibleError(message)


def check_energy_unit(energy_unit: Any, source: str) -> str:
    """``energy_unit`` as given, or :class:`ValueError`: model files of ``source`` do not record their
    unit, so the caller must say it (a name of :mod:`ase.units`, checked where it is used)."""
    if not isinstance(energy_unit, str) or not energy_unit.strip():
        raise ValueError(
            f"energy_unit is required: a {source} model does not record the unit of its energies; give the unit of "
            f"its training energies as a name of ase.units, e.g. energy_unit='eV' or 'kcal/mol' (got {energy_unit!r})"
        )
    return energy_unit.strip()


@torch.no_grad()
def copy_dense(target: Dense, weight: Tensor, bias: Optional[Tensor], where: str) -> None:
    """Copy ``weight`` ``[out, in]`` and ``bias`` ``[out]`` (``None``: a layer without bias, copied as
    an exact zero bias) into ``target``, checking the shapes."""
    require(
        tuple(weight.shape) == tuple(target.weight.shape),
        f"{where}: weight of shape {tuple(weight.shape)}, expected {tuple(target.weight.shape)}",
    )
    target.weight.copy_(weight.detach())
    if bias is None:
        target.bias.zero_()
    else:
        require(
            tuple(bias.shape) == tuple(target.bias.shape),
            f"{where}: bias of shape {tuple(bias.shape)}, expected {tuple(target.bias.shape)}",
        )
        target.bias.copy_(bias.detach())


@torch.no_grad()
def fold_activation_shift(after: Dense, shift: float) -> None:
    r"""Make ``after`` see an activation :math:`\mathrm{softplus}(x) - s` where ours gives
    :math:`\mathrm{softplus}(x) - \ln 2`: :math:`W(a + \delta) + b = Wa + (b + \delta W\mathbf{1})` with
    :math:`\delta = \ln 2 - s`, folded into the bias (PyG subtracts :math:`\ln 2` rounded to float32,
    :math:`\delta \approx 1.9 \cdot 10^{-9}`). Exact up to the rounding of the bias in its dtype."""
    delta = LN2 - float(shift)
    if delta != 0.0:
        after.bias.add_(delta * after.weight.sum(dim=1))


def gaussian_grid(offsets: Tensor, where: str) -> Dict[str, Any]:
    """``rbf_start`` / ``rbf_stop`` / ``num_gaussians`` of Gaussian centres ``offsets`` (Angstrom),
    checked to be the evenly spaced grid our :class:`~pyg_schnet.nn.GaussianRBF` builds
    (``linspace(start, stop, K)`` in float64) to the rounding of their dtype: centres built by
    ``torch.linspace`` in float32 (PyG's and SchNetPack's default) differ from ours by at most a few
    float32 ulps (about 2e-7 Angstrom at 5 Angstrom), the only difference of a converted model that is
    not at float64 rounding (see :mod:`pyg_schnet.models.convert`). A grid changed after construction
    (trainable centres) is refused."""
    values = offsets.detach().to(torch.float64).flatten().cpu()
    k = values.numel()
    require(k >= 2, f"{where}: {k} Gaussian centre(s); SchNet's expansion needs at least 2")
    start, stop = float(values[0]), float(values[-1])
    require(stop > start, f"{where}: the Gaussian centres run from {start} to {stop}, not upwards")
    grid = torch.linspace(start, stop, k, dtype=torch.float64)
    eps = torch.finfo(offsets.dtype).eps if offsets.is_floating_point() else 0.0
    tolerance = 8 * eps * max(abs(start), abs(stop), 1.0)
    worst = float((values - grid).abs().max())
    require(
        worst <= tolerance,
        f"{where}: the Gaussian centres are not evenly spaced on [{start}, {stop}] (centre "
        f"{int((values - grid).abs().argmax())} is {worst:.3g} Angstrom off the grid; trained or edited "
        "centres?); our GaussianRBF has a uniform grid",
    )
    return {"rbf_start": start, "rbf_stop": stop, "num_gaussians": k}


def centre_options(offsets: Tensor, start: float, stop: float, num_gaussians: int) -> Dict[str, str]:
    """``{"rbf_linspace_dtype": ...}``: the dtype in which ``torch.linspace(start, stop, num_gaussians)``
    reproduces the source's centres ``offsets`` bit for bit (``"float32"`` for PyG's and SchNetPack's
    default), or, where neither does (a file from a torch whose ``linspace`` rounds differently), the
    closer one."""
    values = offsets.detach().to(torch.float64).flatten().cpu()
    errors = {}
    for name in ("float64", "float32"):
        grid = torch.linspace(start, stop, num_gaussians, dtype=getattr(torch, name)).to(torch.float64)
        errors[name] = float((grid - values).abs().max())
    return {"rbf_linspace_dtype": min(errors, key=lambda name: errors[name])}


@torch.no_grad()
def set_energy_scale(model: SchNet, scale: float, mean: float, atomref: Optional[Tensor], where: str) -> None:
    r"""Give ``model``'s head :math:`E = \sum_i (s\, y_i + \mu + E^{\text{ref}}_{Z_i})`.

    Ours keeps :math:`\sigma > 0`: a negative :math:`s` becomes :math:`\sigma = |s|` with the output
    layer negated (:math:`y \to -y`, exact). ``atomref`` ``[n]`` fills the first ``n`` entries of the
    model's table; entries beyond ``max_z`` must be zero.
    """
    require(math.isfinite(scale) and scale != 0.0, f"{where}: energy scale {scale} (std); needs a finite non-zero one")
    if scale < 0:
        out = model.head.output_layer
        out.weight.neg_()
        out.bias.neg_()
    if atomref is not None:
        ref = atomref.detach().to(torch.float64).flatten().cpu()
        size = model.atomref.numel()
        if ref.numel() > size:
            extra = ref[size:]
            require(
                bool((extra == 0).all()),
                f"{where}: atom references for atomic numbers up to {ref.numel() - 1}, the embedding knows "
                f"1 .. {size - 1} (atomic number {size + int(extra.nonzero()[0])} has a non-zero reference)",
            )
            ref = ref[:size]
        atomref = ref
    model.set_standardization(float(mean), abs(float(scale)), atomref)


def new_model(config: Dict[str, Any], dtype: torch.dtype, energy_unit: str) -> SchNet:
    """A :class:`SchNet` of ``config`` in ``dtype``, eval mode, with ``units`` set (no training domain:
    the source does not record one)."""
    model = SchNet(**config).to(dtype).eval()
    model.units = {"energy": energy_unit, "length": "Angstrom"}
    model.training_domain = None
    return model


def module_dtype(module: nn.Module, where: str) -> torch.dtype:
    """The floating dtype of ``module``'s parameters (one for all)."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    require(len(dtypes) <= 1, f"{where}: parameters of several dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop() if dtypes else torch.get_default_dtype()
