"""Energy standardisation from the training split, stored in the model.

SchNet predicts ``E = sum_i (std * y_i + mean + atomref[z_i])`` (see
:meth:`pyg_schnet.SchNet.set_standardization`), so the network's atom-wise outputs ``y_i`` are of
order one. ``mean`` and ``std`` are the mean and standard deviation over training molecules of the
per-atom energy

.. math::
    e_m = \\frac{1}{n_m}\\left(E_m - \\sum_{i \\in m} E^{\\mathrm{ref}}_{Z_i}\\right),

with the atom reference energies ``E^ref`` of QM9 (``atomref``) or zero (MD17, ISO17). Units are those
of ``data.energy`` (kcal/mol in our benchmarks); ``atomref`` must be in the same units.
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

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


def standardize_model(
    model: nn.Module, train_dataset, atomref: Optional[Tensor] = None, batch_size: int = 1024
) -> Tuple[float, float]:
    """Fits ``(mean, std)`` on ``train_dataset`` and stores them (and ``atomref``) in ``model``.

    Returns:
        ``(mean, std)`` per atom, in the units of ``data.energy``.
    """
    mean, std = energy_statistics(train_dataset, atomref, batch_size)
    model.set_standardization(mean, std, atomref)
    return mean, std
