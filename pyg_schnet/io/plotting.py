"""What every figure of pyg-schnet shares: matplotlib on the Agg backend, imported only when a figure
is drawn (matplotlib is the optional ``plot`` extra), and an atomic PNG write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from pyg_schnet.io.files import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> Path:
    """Atomic PNG write (:func:`pyg_schnet.io.files.atomic_path`)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def finish_figure(plt: Any, fig: Any, path: Union[str, os.PathLike], title: str) -> Path:
    """Title, layout, atomic save, close: the end of every figure here."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = save_png(fig, Path(path))
    plt.close(fig)
    return out
