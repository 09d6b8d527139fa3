"""Test and validation errors in the paper's units, accumulated over a data loader.

Energies: mean absolute error (MAE) and root-mean-square error (RMSE) over molecules, in the
target's energy unit (kcal/mol in our benchmarks). Forces: MAE and RMSE over all Cartesian force
components ``F_{i,alpha}`` of all atoms (kcal/mol/Angstrom), which is how the paper and GDML report
force errors. Sums run in float64.

Extra heads (:mod:`pyg_schnet.train.heads`) add ``<name>_mae`` and ``<name>_rmse`` in their target's
unit: over structures for scalar heads, over the Cartesian components for a ``"dipole"`` head, which
also gets ``<name>_norm_mae``, the MAE of the norm (what QM9 benchmarks report for mu).

Stress (periodic structures trained with ``TrainConfig.stress_weight > 0``): ``stress_mae`` and
``stress_rmse`` over the nine components :math:`\\sigma_{\\alpha\\beta}` of every structure's 3 x 3 stress,
in the energy unit per Angstrom^3 (kcal/mol/Angstrom^3 in the protocols; ASE's sign).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.train.heads import VECTOR_KINDS, head_target
from pyg_schnet.train.loss import per_molecule_loss
from pyg_schnet.train.predict import predict_outputs, predict_with_stress


class ErrorAccumulator:
    """Running sums of absolute and squared errors, and of the Eq. 5 loss.

    Call :meth:`update` once per batch and :meth:`compute` at the end; the sums stay on the batches'
    device until :meth:`compute` or :meth:`totals` reads them (one host synchronisation, not one per
    batch). With ``keep_predictions``
    the (detached, CPU, float64) predictions and targets are kept for parity plots.
    ``energy_weight`` weighs the energy term of the accumulated loss (:func:`per_molecule_loss`).
    ``heads`` (name -> kind) are extra heads whose errors are accumulated too, and ``head_weights``
    their weights in the accumulated loss (a head not named there adds no loss term). With ``stress``
    the stress errors are accumulated too (``stress_weight`` weighs them in the loss,
    :func:`~pyg_schnet.train.loss.per_molecule_loss`).

    Accumulators of disjoint shards of a data set combine exactly by adding their :meth:`totals`
    (what :mod:`pyg_schnet.train.distributed` all-reduces across processes).
    """

    #: names of the running sums without extra heads, in the order of :meth:`totals`
    TOTALS = ("num_molecules", "num_components", "energy_abs", "energy_sq", "force_abs", "force_sq", "loss")

    def __init__(
        self,
        rho: float = 0.0,
        keep_predictions: bool = False,
        energy_weight: float = 1.0,
        heads: Optional[Mapping[str, str]] = None,
        head_weights: Optional[Mapping[str, float]] = None,
        stress: bool = False,
        stress_weight: float = 0.0,
    ) -> None:
        self.rho = float(rho)
        self.stress = bool(stress)
        self.stress_weight = float(stress_weight) if self.stress else 0.0
        self.energy_weight = float(energy_weight)
        self.keep_predictions = keep_predictions
        self.heads: Dict[str, str] = dict(heads or {})
        self.head_weights: Dict[str, float] = {k: float(v) for k, v in (head_weights or {}).items() if k in self.heads}
        self.num_molecules = 0
        self.num_components = 0
        # energy_abs, energy_sq, force_abs, force_sq, loss (and the heads' sums): float64 on the device of
        # the first batch, so that update() never reads the device (no host synchronisation per step)
        self._sums: Optional[Tensor] = None
        self.predictions: Dict[str, List[Tensor]] = {
            "energy_pred": [],
            "energy_true": [],
            "force_pred": [],
            "force_true": [],
        }
        for name in self.heads:
            self.predictions[f"{name}_pred"] = []
            self.predictions[f"{name}_true"] = []
        if self.stress:
            self.predictions["stress_pred"] = []
            self.predictions["stress_true"] = []

    @property
    def totals_names(self) -> Tuple[str, ...]:
        """The names of :meth:`totals`: :data:`TOTALS`, then per extra head ``<name>_abs``, ``<name>_sq``
        (and ``<name>_norm_abs`` for a dipole), then ``stress_abs``, ``stress_sq`` when it tracks the stress."""
        names = list(self.TOTALS)
        for name, kind in self.heads.items():
            names += [f"{name}_abs", f"{name}_sq"] + ([f"{name}_norm_abs"] if kind in VECTOR_KINDS else [])
        if self.stress:
            names += ["stress_abs", "stress_sq"]
        return tuple(names)

    def _add(self, *terms: Tensor) -> None:
        """Adds the sums (in the order of :attr:`totals_names` after the two counts) on their device."""
        step = torch.stack([t.reshape(()) for t in terms])
        self._sums = step if self._sums is None else self._sums + step.to(self._sums.device)

    def _host_sums(self) -> List[float]:
        size = len(self.totals_names) - 2
        return [0.0] * size if self._sums is None else [float(v) for v in self._sums.cpu()]

    @torch.no_grad()
    def update(
        self,
        energy_pred: Tensor,
        energy_true: Tensor,
        batch: Tensor,
        force_pred: Optional[Tensor] = None,
        force_true: Optional[Tensor] = None,
        *,
        head_outputs: Optional[Mapping[str, Tensor]] = None,
        head_targets: Optional[Mapping[str, Tensor]] = None,
        stress_pred: Optional[Tensor] = None,
        stress_true: Optional[Tensor] = None,
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
        outputs: Dict[str, Tensor] = {}
        targets: Dict[str, Tensor] = {}
        head_sums: List[Tensor] = []
        if self.heads:
            if head_outputs is None or head_targets is None:
                raise ValueError(f"this accumulator tracks the heads {list(self.heads)}: pass outputs and targets")
            for name, kind in self.heads.items():
                pred = outputs[name] = head_outputs[name].detach().double()
                true = targets[name] = head_targets[name].detach().double().reshape(pred.shape)
                hdiff = pred - true
                head_sums += [hdiff.abs().sum(), hdiff.square().sum()]
                if kind in VECTOR_KINDS:
                    head_sums.append((pred.norm(dim=-1) - true.norm(dim=-1)).abs().sum())
        stress_sums: List[Tensor] = []
        if self.stress:
            if stress_pred is None or stress_true is None:
                raise ValueError("this accumulator tracks the stress: pass stress_pred and stress_true")
            stress_pred = stress_pred.detach().double()
            stress_true = stress_true.detach().double().reshape(stress_pred.shape)
            sdiff = stress_pred - stress_true
            stress_sums = [sdiff.abs().sum(), sdiff.square().sum()]
        loss = per_molecule_loss(
            energy_pred,
            energy_true,
            batch,
            rho,
            force_pred,
            force_true,
            self.energy_weight,
            head_outputs=outputs,
            head_targets=targets,
            head_weights=self.head_weights,
            stress_pred=stress_pred if self.stress else None,
            stress_true=stress_true if self.stress else None,
            stress_weight=self.stress_weight,
        ).sum()
        self._add(diff.abs().sum(), diff.square().sum(), force_abs, force_sq, loss, *head_sums, *stress_sums)
        if self.keep_predictions:
            self.predictions["energy_pred"].append(energy_pred.cpu())
            self.predictions["energy_true"].append(energy_true.cpu())
            if with_forces:
                self.predictions["force_pred"].append(force_pred.cpu())
                self.predictions["force_true"].append(force_true.cpu())
            for name in self.heads:
                self.predictions[f"{name}_pred"].append(outputs[name].cpu())
                self.predictions[f"{name}_true"].append(targets[name].cpu())
            if self.stress:
                assert stress_pred is not None and stress_true is not None
                self.predictions["stress_pred"].append(stress_pred.cpu())
                self.predictions["stress_true"].append(stress_true.cpu())

    def totals(self) -> Tensor:
        """The running sums as a float64 vector in the order of :attr:`totals_names` (counts are exact in
        float64 up to 2^53)."""
        return torch.tensor([self.num_molecules, self.num_components, *self._host_sums()], dtype=torch.float64)

    def set_totals(self, totals: Tensor) -> None:
        """Replaces the running sums by ``totals`` (a vector as returned by :meth:`totals`)."""
        values = [float(v) for v in totals.detach().cpu().reshape(-1)]
        names = self.totals_names
        if len(values) != len(names):
            raise ValueError(f"expected {len(names)} totals {names}, got {len(values)}")
        self.num_molecules, self.num_components = int(values[0]), int(values[1])
        self._sums = torch.tensor(values[2:], dtype=torch.float64)

    def compute(self) -> Dict[str, float]:
        """``energy_mae``, ``energy_rmse``, ``force_mae``, ``force_rmse`` (NaN without forces),
        ``loss`` (mean Eq. 5 over molecules, with the heads' weighted terms), ``num_molecules``, and per
        extra head ``<name>_mae``, ``<name>_rmse`` (``<name>_norm_mae`` for a dipole); with the stress
        ``stress_mae``, ``stress_rmse`` (over the nine components of every structure)."""
        if self.num_molecules == 0:
            raise ValueError("no molecules were accumulated; is the data set or split empty?")
        n, c = self.num_molecules, self.num_components
        sums = self._host_sums()  # the one read of the device
        energy_abs, energy_sq, force_abs, force_sq, loss = sums[:5]
        result = {
            "energy_mae": energy_abs / n,
            "energy_rmse": math.sqrt(energy_sq / n),
            "force_mae": force_abs / c if c else float("nan"),
            "force_rmse": math.sqrt(force_sq / c) if c else float("nan"),
            "loss": loss / n,
            "num_molecules": n,
        }
        rest = iter(sums[5:])
        for name, kind in self.heads.items():
            count = n * (3 if kind in VECTOR_KINDS else 1)
            result[f"{name}_mae"] = next(rest) / count
            result[f"{name}_rmse"] = math.sqrt(next(rest) / count)
            if kind in VECTOR_KINDS:
                result[f"{name}_norm_mae"] = next(rest) / n
        if self.stress:
            result["stress_mae"] = next(rest) / (9 * n)
            result["stress_rmse"] = math.sqrt(next(rest) / (9 * n))
        return result

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
    heads: Optional[Mapping[str, str]] = None,
    head_weights: Optional[Mapping[str, float]] = None,
    with_stress: bool = False,
    stress_weight: float = 0.0,
) -> ErrorAccumulator:
    """Runs ``model`` (switched to eval mode) over ``loader`` and accumulates its errors.

    Each batch needs ``energy`` and, with ``with_forces``, ``force``; with ``heads`` (extra heads of the
    model, name -> kind) also each head's target ``batch.<name>`` (:func:`~pyg_schnet.train.heads.head_target`).
    Forces need gradients with respect to positions, so they are computed outside ``torch.no_grad``;
    nothing is kept. ``with_stress`` (periodic structures with ``stress``, sparse batches, no extra heads)
    also accumulates the stress errors (:func:`~pyg_schnet.train.predict.predict_with_stress`), weighted
    by ``stress_weight`` in the loss.

    Returns:
        the filled :class:`ErrorAccumulator`; call ``.compute()`` for the numbers.
    """
    model.eval()
    if with_stress and heads:
        raise ValueError(f"the stress is evaluated for models without extra heads; this one has {list(heads)}")
    acc = ErrorAccumulator(
        rho=rho,
        keep_predictions=keep_predictions,
        energy_weight=energy_weight,
        heads=heads,
        head_weights=head_weights,
        stress=with_stress,
        stress_weight=stress_weight,
    )
    for batch in loader:
        if with_stress:
            batch = batch.to(device)
            energy, forces, stress = predict_with_stress(model, batch)
            acc.update(
                energy,
                batch.energy,
                batch.batch,
                forces if with_forces else None,
                batch.force if with_forces else None,
                stress_pred=stress,
                stress_true=batch.stress,
            )
            continue
        layout = HostLayout.of_batch(batch)  # sizes and pair distances read on the host, before the transfer
        batch = batch.to(device)
        if with_forces:
            energy, forces, outputs = predict_outputs(model, batch, True, batching, layout, heads)
        else:
            with torch.no_grad():
                energy, forces, outputs = predict_outputs(model, batch, False, batching, layout, heads)
        num_graphs = energy.reshape(-1).numel()
        targets = {name: head_target(batch, name, kind, num_graphs) for name, kind in acc.heads.items()}
        acc.update(
            energy,
            batch.energy,
            batch.batch,
            forces if with_forces else None,
            batch.force if with_forces else None,
            head_outputs=outputs,
            head_targets=targets,
        )
    return acc
