"""PNG figures of a training run: learning curves and test-set parity plots (matplotlib, Agg backend).

matplotlib is an optional dependency (the ``plot`` extra); it is imported only when a figure is drawn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from pyg_schnet.io.plotting import finish_figure, pyplot


def plot_learning_curves(history: Sequence[Dict[str, float]], path: os.PathLike | str, title: str = "") -> Path:
    """Validation energy and force MAE (EMA weights) and training loss against the optimizer step."""
    plt = pyplot()
    steps = [row["step"] for row in history]
    panels: List[tuple] = [("val_energy_mae", "validation energy MAE [kcal/mol]")]
    if any(math.isfinite(row.get("val_force_mae", math.nan)) for row in history):
        panels.append(("val_force_mae", "validation force MAE [kcal/mol/Å]"))
    panels.append(("train_loss", "training loss (Eq. 5, running mean)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        values = [row[key] for row in history]
        ax.plot(steps, values, lw=1.2)
        if all(v > 0 for v in values if math.isfinite(v)):
            ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    return finish_figure(plt, fig, path, title)


def plot_parity(
    predictions: Dict[str, Tensor],
    path: os.PathLike | str,
    title: str = "",
    metrics: Optional[Dict[str, float]] = None,
) -> Path:
    """Predicted against reference test energies (shifted by the mean reference energy) and, when
    present, force components.

    Args:
        predictions: ``energy_pred``, ``energy_true`` ``[M]`` and optionally ``force_pred``,
            ``force_true`` ``[N, 3]`` (as from :meth:`ErrorAccumulator.concatenated`).
        metrics: optional ``energy_mae`` / ``force_mae`` written into the panels.
    """
    plt = pyplot()
    with_forces = predictions.get("force_pred") is not None and predictions["force_pred"].numel() > 0
    fig, axes = plt.subplots(1, 2 if with_forces else 1, figsize=(8.4 if with_forces else 4.2, 4.0), squeeze=False)
    e_true = predictions["energy_true"].double()
    e_pred = predictions["energy_pred"].double()
    offset = float(e_true.mean())
    panels = [
        (
            axes[0][0],
            e_true - offset,
            e_pred - offset,
            f"energy + {-offset:.2f} [kcal/mol]" if offset < 0 else f"energy − {offset:.2f} [kcal/mol]",
            "energy_mae",
            "kcal/mol",
        )
    ]
    if with_forces:
        panels.append(
            (
                axes[0][1],
                predictions["force_true"].reshape(-1),
                predictions["force_pred"].reshape(-1),
                "force component [kcal/mol/Å]",
                "force_mae",
                "kcal/mol/Å",
            )
        )
    for ax, ref, pred, label, key, unit in panels:
        ax.scatter(ref.numpy(), pred.numpy(), s=3, alpha=0.4, linewidths=0)
        lo = float(min(ref.min(), pred.min()))
        hi = float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        if metrics and key in metrics and math.isfinite(metrics[key]):
            ax.set_title(f"MAE {metrics[key]:.3f} {unit}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    return finish_figure(plt, fig, path, title)
