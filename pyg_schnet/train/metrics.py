"""Test and validation errors in the paper's units, accumulated over a data loader.

Energies: mean absolute error (MAE) and root-mean-square error (RMSE) over molecules, in the
target's energy unit (kcal/mol in our benchmarks). Forces: MAE and RMSE over all Cartesian force
components ``F_{i,alpha}`` of all atoms (kcal/mol/Angstrom), which is how the paper and GDML report
force errors. Sums run in float64.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.train.loss import per_molecule_loss
from pyg_schnet.train.predict import predict


class ErrorAccumulator:
    """Running sums of absolute and squared errors, and of the Eq. 5 loss.

    Call :meth:`update` once per batch and :meth:`compute` at the end; the sums stay on the batches'
    device until :meth:`compute` or :meth:`totals` reads them (one host synchronisation, not one per
    batch). With ``keep_predictions``
    the (detached, CPU, float64) predictions and targets are kept for parity plots.
    ``energy_weight`` weighs the energy term of the accumulated loss (:func:`per_molecule_loss`).

    Accumulators of disjoint shards of a data set combine exactly by adding their :meth:`totals`
    (what :mod:`pyg_schnet.train.distributed` all-reduces across processes).
    """

    #: names of the running sums, in the order of :meth:`totals`
    TOTALS = ("num_molecules", "num_components", "energy_abs", "energy_sq", "force_abs", "force_sq", "loss")

    def __init__(self, rho: float = 0.0, keep_predictions: bool = False, energy_weight: float = 1.0) -> None:
        self.rho = float(rho)
        self.energy_weight = float(energy_weight)
        self.keep_predictions = keep_predictions
        self.num_molecules = 0
        self.num_components = 0
        # energy_abs, energy_sq, force_abs, force_sq, loss: float64 on the device of the first batch,
        # so that update() never reads the device (no host synchronisation per training step)
        self._sums: Optional[Tensor] = None
        self.predictions: Dict[str, List[Tensor]] = {
            "energy_pred": [],
            "energy_true": [],
            "force_pred": [],
            "force_true": [],
        }

    def _add(self, *terms: Tensor) -> None:
        """Adds the five sums (in the order of :data:`TOTALS` after the two counts) on their device."""
        step = torch.stack([t.reshape(()) for t in terms])
        self._sums = step if self._sums is None else self._sums + step.to(self._sums.device)

    def _host_sums(self) -> List[float]:
        return [0.0] * 5 if self._sums is None else [float(v) for v in self._sums.cpu()]

    @torch.no_grad()
    def update(
        self,
        energy_pred: Tensor,
        energy_true: Tensor,
        batch: Tensor,
        force_pred: Optional[Tensor] = None,
        force_true: Optional[Tensor] = None,
    ) -> None:
        energy_pred = energy_pred.detach().reshape(-1).double()
        energy_true = energy_true.detach().reshape(-1).double()
        diff = energy_pred - energy_true
        self.num_molecules += diff.numel()
        with_forces = force_pred is not None and force_true is not None
        zero = diff.new_zeros(())
        force_abs = force_sq = zero
        if with_forces:
            force_pred = force_pred.detach().double()
            force_true = force_true.detach().double()
            fdiff = force_pred - force_true
            self.num_components += fdiff.numel()
            force_abs, force_sq = fdiff.abs().sum(), fdiff.square().sum()
        rho = self.rho if with_forces else 0.0
        loss = per_molecule_loss(energy_pred, energy_true, batch, rho, force_pred, force_true, self.energy_weight).sum()
        self._add(diff.abs().sum(), diff.square().sum(), force_abs, force_sq, loss)
        if self.keep_predictions:
            self.predictions["energy_pred"].append(energy_pred.cpu())
            self.predictions["energy_true"].append(energy_true.cpu())
            if with_forces:
                self.predictions["force_pred"].append(force_pred.cpu())
                self.predictions["force_true"].append(force_true.cpu())

    def totals(self) -> Tensor:
        """The running sums as a float64 vector in the order of :data:`TOTALS` (counts are exact in
        float64 up to 2^53)."""
        return torch.tensor([self.num_molecules, self.num_components, *self._host_sums()], dtype=torch.float64)

    def set_totals(self, totals: Tensor) -> None:
        """Replaces the running sums by ``totals`` (a vector as returned by :meth:`totals`)."""
        values = [float(v) for v in totals.detach().cpu().reshape(-1)]
        if len(values) != len(self.TOTALS):
            raise ValueError(f"expected {len(self.TOTALS)} totals {self.TOTALS}, got {len(values)}")
        self.num_molecules, self.num_components = int(values[0]), int(values[1])
        self._sums = torch.tensor(values[2:], dtype=torch.float64)

    def compute(self) -> Dict[str, float]:
        """``energy_mae``, ``energy_rmse``, ``force_mae``, ``force_rmse`` (NaN without forces),
        ``loss`` (mean Eq. 5 over molecules) and ``num_molecules``."""
        if self.num_molecules == 0:
            raise ValueError("no molecules were accumulated; is the data set or split empty?")
        n, c = self.num_molecules, self.num_components
        energy_abs, energy_sq, force_abs, force_sq, loss = self._host_sums()  # the one read of the device
        return {
            "energy_mae": energy_abs / n,
            "energy_rmse": math.sqrt(energy_sq / n),
            "force_mae": force_abs / c if c else float("nan"),
            "force_rmse": math.sqrt(force_sq / c) if c else float("nan"),
            "loss": loss / n,
            "num_molecules": n,
        }

    def concatenated(self) -> Dict[str, Tensor]:
        """The kept predictions and targets, each concatenated over batches (empty when not kept)."""
        return {k: torch.cat(v) if v else torch.empty(0, dtype=torch.float64) for k, v in self.predictions.items()}


def evaluate(
    model: nn.Module,
    loader: Iterable,
    with_forces: bool,
    rho: float = 0.0,
    device: torch.device | str = "cpu",
    batching: str = "sparse",
    keep_predictions: bool = False,
    energy_weight: float = 1.0,
) -> ErrorAccumulator:
    """Runs ``model`` (switched to eval mode) over ``loader`` and accumulates its errors.

    Each batch needs ``energy`` and, with ``with_forces``, ``force``. Forces need gradients with
    respect to positions, so they are computed outside ``torch.no_grad``; nothing is kept.

    Returns:
        the filled :class:`ErrorAccumulator`; call ``.compute()`` for the numbers.
    """
    model.eval()
    acc = ErrorAccumulator(rho=rho, keep_predictions=keep_predictions, energy_weight=energy_weight)
    for batch in loader:
        layout = HostLayout.of_batch(batch)  # sizes and pair distances read on the host, before the transfer
        batch = batch.to(device)
        if with_forces:
            energy, forces = predict(model, batch, with_forces=True, batching=batching, layout=layout)
            acc.update(energy, batch.energy, batch.batch, forces, batch.force)
        else:
            with torch.no_grad():
                energy, _ = predict(model, batch, with_forces=False, batching=batching, layout=layout)
            acc.update(energy, batch.energy, batch.batch)
    return acc
