"""Energy standardisation from the training split, stored in the model.

SchNet predicts ``E = sum_i (std * y_i + mean + atomref[z_i])`` (see
:meth:`pyg_schnet.SchNet.set_standardization`), so the network's atom-wise outputs ``y_i`` are of
order one. ``mean`` and ``std`` are the mean and standard deviation over training molecules of the
per-atom energy

.. math::
    e_m = \\frac{1}{n_m}\\left(E_m - \\sum_{i \\in m} E^{\\mathrm{ref}}_{Z_i}\\right),

with the atom reference energies ``E^ref`` of QM9 (``atomref``) or zero (MD17, ISO17). Units are those
of ``data.energy`` (kcal/mol in our benchmarks); ``atomref`` must be in the same units.

Other heads (``SchNetConfig.output`` and ``extra_heads``; :func:`standardize_model` does them all):

* **intensive** (HOMO, LUMO, gap; the model averages atom contributions): ``mean`` and ``std`` over
  training structures of the target itself, :math:`y_m` (a mean of per-atom values has the spread of
  the values); atom references are refused.
* **dipole** (``"dipole_moment"``, ``"dipole"``): ``mean`` 0 and a charge scale ``std`` (e) such that
  charges of that spread at the training geometries give dipoles of the training targets' size: with
  :math:`\\sum_i q_i = 0` and uncorrelated charges of variance :math:`\\sigma^2`, the mean of
  :math:`|\\mu|^2` is about :math:`\\sigma^2 \\sum_i |r_i - r_c|^2`, so

  .. math::
      \\sigma = \\left(\\frac{\\sum_m |\\mu_m|^2}{\\sum_m \\sum_{i \\in m} |r_i - r_{c,m}|^2}\\right)^{1/2}.

Extra heads read their targets from ``data.<name>``; a head whose target the data do not hold keeps
its standardisation (mean 0, std 1).
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.loader import DataLoader


def per_atom_energies(dataset, atomref: Optional[Tensor] = None, batch_size: int = 1024) -> Tensor:
    """``e_m`` (see module docstring) of every molecule of ``dataset``, float64 ``[M]``.

    Raises:
        ValueError: a non-finite energy (naming the example) or atomref entry.
    """
    values = []
    ref = None if atomref is None else atomref.detach().to(torch.float64).cpu()
    if ref is not None and not bool(torch.isfinite(ref).all()):
        element = int((~torch.isfinite(ref)).nonzero()[0])
        raise ValueError(f"atomref of atomic number {element} is {float(ref[element])}; cannot standardise energies")
    seen = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        energy = batch.energy.reshape(-1).to(torch.float64)
        bad = ~torch.isfinite(energy)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            raise ValueError(
                f"training example {seen + k} has energy {float(energy[k])}: cannot standardise energies "
                "(a NaN mean would make every prediction NaN)"
            )
        seen += energy.numel()
        counts = torch.bincount(batch.batch, minlength=energy.numel()).to(torch.float64)
        if ref is not None:
            if int(batch.z.max()) >= ref.numel():
                raise ValueError(
                    f"atomref has {ref.numel()} entries but the data hold atomic number {int(batch.z.max())}"
                )
            offsets = torch.zeros_like(energy).index_add_(0, batch.batch, ref[batch.z])
            energy = energy - offsets
        values.append(energy / counts)
    if not values:
        raise ValueError("cannot standardise energies: the training set is empty")
    return torch.cat(values)


def energy_statistics(dataset, atomref: Optional[Tensor] = None, batch_size: int = 1024) -> Tuple[float, float]:
    """``(mean, std)`` of the per-atom energies of ``dataset`` (the training split).

    A single molecule, or identical energies, give no spread; ``std`` is then 1.0 with a warning.
    """
    e = per_atom_energies(dataset, atomref, batch_size)
    mean = float(e.mean())
    std = float(e.std()) if e.numel() > 1 else float("nan")
    if not (std > 0.0) or not torch.isfinite(torch.tensor(std)):
        warnings.warn(
            f"per-atom energies of the {e.numel()} training molecules have no spread (std={std}); using std = 1.0",
            RuntimeWarning,
            stacklevel=2,
        )
        std = 1.0
    return mean, std


def target_values(dataset, key: str = "energy", batch_size: int = 1024) -> Tuple[Tensor, Tensor]:
    """The targets ``data.<key>`` of every structure of ``dataset`` as float64 ``[M]`` (or ``[M, 3]`` for
    vectors), and ``sum_i |r_i - r_c|^2`` per structure ``[M]`` (Angstrom^2, about the centre of geometry).

    Raises:
        ValueError: a structure without the field, or a non-finite value (naming the example).
    """
    values, spreads = [], []
    seen = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        num = int(batch.num_graphs)
        value = getattr(batch, key, None)
        if not isinstance(value, Tensor):
            raise ValueError(f"cannot standardise head {key!r}: the training examples have no field {key!r}")
        width = value.numel() // max(num, 1)
        if value.numel() != num * width or width not in (1, 3):
            raise ValueError(f"data.{key} holds {value.numel()} values for {num} structures (expected 1 or 3 each)")
        value = value.reshape(num, width).to(torch.float64)
        bad = ~torch.isfinite(value).all(dim=1)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            raise ValueError(f"training example {seen + k} has {key} {value[k].tolist()}: cannot standardise it")
        seen += num
        values.append(value if width == 3 else value.reshape(-1))
        pos = batch.pos.to(torch.float64)
        counts = torch.bincount(batch.batch, minlength=num).to(torch.float64)
        centre = torch.zeros(num, 3, dtype=torch.float64).index_add_(0, batch.batch, pos) / counts.unsqueeze(-1)
        squared = (pos - centre[batch.batch]).square().sum(dim=-1)
        spreads.append(torch.zeros(num, dtype=torch.float64).index_add_(0, batch.batch, squared))
    if not values:
        raise ValueError(f"cannot standardise {key}: the training set is empty")
    return torch.cat(values), torch.cat(spreads)


def _spread(values: Tensor, what: str) -> float:
    std = float(values.std()) if values.numel() > 1 else float("nan")
    if not (std > 0.0) or not math.isfinite(std):
        warnings.warn(
            f"{what} of the {values.numel()} training structures have no spread (std={std}); using std = 1.0",
            RuntimeWarning,
            stacklevel=3,
        )
        return 1.0
    return std


def head_statistics(
    dataset, kind: str, key: str = "energy", atomref: Optional[Tensor] = None, batch_size: int = 1024
) -> Tuple[float, float]:
    """``(mean, std)`` of a head of ``kind`` (module docstring) from the targets ``data.<key>``."""
    if kind == "extensive":
        if key == "energy":
            return energy_statistics(dataset, atomref, batch_size)
        values, _ = target_values(dataset, key, batch_size)
        counts = torch.tensor([float(dataset[i].num_nodes) for i in range(len(dataset))], dtype=torch.float64)
        per_atom = values / counts
        return float(per_atom.mean()), _spread(per_atom, f"per-atom {key} values")
    if atomref is not None:
        raise ValueError(
            f"atom references (atomref) apply to extensive targets only (sums of atom contributions); the "
            f"head {key!r} is {kind}: pass atomref=None"
        )
    values, spreads = target_values(dataset, key, batch_size)
    if kind == "intensive":
        return float(values.mean()), _spread(values, f"{key} values")
    if kind in ("dipole", "dipole_moment"):
        squared = values.square().sum(dim=-1) if values.dim() > 1 else values.square()
        denominator = float(spreads.sum())
        scale = math.sqrt(float(squared.sum()) / denominator) if denominator > 0 else 0.0
        if not (scale > 0 and math.isfinite(scale)):
            warnings.warn(
                f"the {key} targets give no charge scale (sum |mu|^2 = {float(squared.sum())}); using std = 1.0 e",
                RuntimeWarning,
                stacklevel=2,
            )
            scale = 1.0
        return 0.0, scale
    raise ValueError(f"unknown head kind {kind!r}")


def standardize_model(
    model: nn.Module, train_dataset, atomref: Optional[Tensor] = None, batch_size: int = 1024
) -> Tuple[float, float]:
    """Fits ``(mean, std)`` on ``train_dataset`` and stores them (and ``atomref``) in ``model``: the
    primary head by its ``config.output`` (per atom for the paper's energy, per structure for an
    intensive target, a charge scale for a dipole moment; see the module docstring), then every extra
    head whose target ``data.<name>`` the examples hold (:func:`standardize_heads`).

    Returns:
        ``(mean, std)`` of the primary head, in the units of ``data.energy`` (per atom for energies).

    Raises:
        ValueError: an ``atomref`` for a primary output that is not extensive.
    """
    settings = getattr(model, "settings", None)
    output = getattr(settings, "output", "extensive")
    mean, std = head_statistics(train_dataset, output, "energy", atomref, batch_size)
    model.set_standardization(mean, std, atomref)
    standardize_heads(model, train_dataset, batch_size)
    return mean, std


def standardize_heads(model: nn.Module, train_dataset, batch_size: int = 1024) -> Dict[str, Tuple[float, float]]:
    """Standardise each extra head of ``model`` (``config.extra_heads``) from ``data.<name>`` of
    ``train_dataset`` (heads whose target the first example lacks are left as they are); returns
    ``{name: (mean, std)}`` of those set."""
    settings = getattr(model, "settings", None)
    done: Dict[str, Tuple[float, float]] = {}
    if settings is None or not settings.extra_heads or len(train_dataset) == 0:
        return done
    first = train_dataset[0]
    for name, kind in settings.extra_heads:
        if getattr(first, name, None) is None:
            continue
        mean, std = head_statistics(train_dataset, kind, name, None, batch_size)
        model.set_standardization(mean, std, None, head=name)
        done[name] = (mean, std)
    return done
