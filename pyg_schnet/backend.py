"""Every switch of pyg-schnet in one place: compiled kernels, the fast filters, the graph memory limit.

=========================  ==========================================  ==============================
switch                     process default (this module)               per model
=========================  ==========================================  ==============================
compiled kernels           :data:`USE_TORCH_SCATTER`,                  (process-wide: the kernels are
                           :data:`USE_TORCH_CLUSTER` (``True`` when     imported or not)
                           the package imports)
fast filters               :data:`FAST_FILTERS` (``True``);             ``SchNet.representation
                           :func:`reference_path` / :func:`set_fast_    .fast_filters`` (``None``:
                           path` change it                              the default)
all-pairs graph memory     :data:`MAX_GRAPH_BYTES` (4 GiB, or           ``SchNet.representation
                           ``$PYG_SCHNET_MAX_GRAPH_BYTES``)             .max_graph_bytes``
=========================  ==========================================  ==============================

The value checks of model inputs have their own switch, next to the checks:
:func:`pyg_schnet.validation.trusted_inputs` (a context manager, per thread; the trainer's steps run
inside it, on data validated when it was loaded), which leaves only the shape and dtype checks, so a
training step reads nothing from the device.

Environment variables are read once, when this module is imported (:func:`read_environment` reads
them again): ``PYG_SCHNET_MAX_GRAPH_BYTES`` (bytes). The variables of data sets and distributed
training (``PYG_SCHNET_OFFLINE``, ``PYG_SCHNET_DIST_BACKEND``, ``PYG_SCHNET_DIST_TIMEOUT_S``) belong
to those layers and are documented there.

**Kernels.** Messages are aggregated with :func:`torch_scatter.scatter_add` and radius graphs come
from :func:`torch_cluster.radius_graph`. When either package cannot be imported (they compile from
source for new torch releases) the same operations run in plain PyTorch (``Tensor.index_add_`` here,
a brute-force pair search in :mod:`pyg_schnet.graph.pairs`) and one :class:`RuntimeWarning` says so.
Both paths give identical results (``tests/test_backend.py``). Nothing here imports another module
of pyg-schnet.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from torch import Tensor

#: The compiled packages (``None`` when they cannot be imported).
torch_scatter: Any = None
torch_cluster: Any = None
_SCATTER_ERROR: Optional[str] = None
_CLUSTER_ERROR: Optional[str] = None
try:  # pragma: no cover - which branch runs depends on the installation
    import torch_scatter as _torch_scatter

    torch_scatter = _torch_scatter
except (ImportError, OSError) as exc:  # pragma: no cover
    _SCATTER_ERROR = f"{type(exc).__name__}: {exc}"

# torch-cluster imports scipy (0.45 s of every start-up, docs/benchmarks.md "Start-up time"): it is
# found here and imported when the first radius graph is built (:func:`cluster`)
if importlib.util.find_spec("torch_cluster") is None:  # pragma: no cover
    _CLUSTER_ERROR = "ModuleNotFoundError: No module named 'torch_cluster'"

#: True when aggregation goes through the compiled torch-scatter package.
USE_TORCH_SCATTER: bool = torch_scatter is not None
#: True when radius graphs come from the compiled torch-cluster package (it is installed; imported on
#: first use by :func:`cluster`, which turns this off with a warning if that import fails).
USE_TORCH_CLUSTER: bool = _CLUSTER_ERROR is None

_missing = [
    f"{name} ({err})"
    for name, err in (("torch-scatter", _SCATTER_ERROR), ("torch-cluster", _CLUSTER_ERROR))
    if err is not None
]
if _missing:
    warnings.warn(
        "pyg-schnet: could not import " + "; ".join(_missing) + ". Falling back to plain PyTorch "
        "(index_add_ and a brute-force radius graph): same results, slower on large systems. "
        "Install them with `pip install --no-build-isolation torch-scatter torch-cluster`.",
        RuntimeWarning,
        stacklevel=2,
    )

#: Whether models compute their filters on the fast path (:mod:`pyg_schnet.nn.fused`) by default.
FAST_FILTERS: bool = True

#: Environment variable that sets :data:`MAX_GRAPH_BYTES` (read by :func:`read_environment`).
MAX_GRAPH_BYTES_ENV = "PYG_SCHNET_MAX_GRAPH_BYTES"
#: Default of :data:`MAX_GRAPH_BYTES`: 4 GiB.
DEFAULT_MAX_GRAPH_BYTES = 4 * 2**30
#: Largest memory estimate (bytes) of an all-pairs graph (``cutoff=None``) that a model builds
#: (:func:`pyg_schnet.graph.check_all_pairs_memory`); assign a number of bytes to change it.
MAX_GRAPH_BYTES: int = DEFAULT_MAX_GRAPH_BYTES
_ENVIRONMENT_ERROR: Optional[str] = None


def read_environment() -> None:
    """Read the environment variables of the module docstring into the switches (done on import).

    An invalid value is not raised here (importing pyg-schnet must not fail): the first use of the
    switch raises it, naming the variable (:func:`graph_memory_limit`).
    """
    global MAX_GRAPH_BYTES, _ENVIRONMENT_ERROR
    _ENVIRONMENT_ERROR = None
    MAX_GRAPH_BYTES = DEFAULT_MAX_GRAPH_BYTES
    text = os.environ.get(MAX_GRAPH_BYTES_ENV)
    if text is None or not text.strip():
        return
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        _ENVIRONMENT_ERROR = f"{MAX_GRAPH_BYTES_ENV} must be a positive number of bytes, got {text!r}"
        return
    MAX_GRAPH_BYTES = int(value)


read_environment()


def graph_memory_limit(override: Optional[int] = None) -> int:
    """The all-pairs graph limit in bytes: a model's ``override``, else :data:`MAX_GRAPH_BYTES`.

    Raises:
        ValueError: ``$PYG_SCHNET_MAX_GRAPH_BYTES`` held no positive number when it was read.
    """
    if override is not None:
        return int(override)
    if _ENVIRONMENT_ERROR is not None:
        raise ValueError(_ENVIRONMENT_ERROR)
    return int(MAX_GRAPH_BYTES)


def fast_filters(override: Optional[bool] = None) -> bool:
    """Whether to use the fast filters: a model's ``override``, else :data:`FAST_FILTERS`."""
    return FAST_FILTERS if override is None else bool(override)


def set_fast_path(enabled: bool) -> None:
    """Set :data:`FAST_FILTERS`: the fused filters (``True``, the default) or the reference modules."""
    global FAST_FILTERS
    FAST_FILTERS = bool(enabled)


@contextmanager
def reference_path() -> Iterator[None]:
    """Run the ``with`` block with :data:`FAST_FILTERS` off (the plain :class:`~pyg_schnet.nn.GaussianRBF`
    and :class:`~pyg_schnet.nn.FilterNetwork` of each block), then restore the previous setting.
    Models whose ``fast_filters`` is set keep their own choice."""
    previous = FAST_FILTERS
    set_fast_path(False)
    try:
        yield
    finally:
        set_fast_path(previous)


def cluster() -> Any:
    """The torch-cluster module, imported on first use; ``None`` when it cannot be (then
    :data:`USE_TORCH_CLUSTER` is switched off and one :class:`RuntimeWarning` says so)."""
    global torch_cluster, USE_TORCH_CLUSTER
    if torch_cluster is None and USE_TORCH_CLUSTER:
        try:
            import torch_cluster as _torch_cluster

            torch_cluster = _torch_cluster
        except (ImportError, OSError) as exc:  # pragma: no cover - a broken build
            USE_TORCH_CLUSTER = False
            warnings.warn(
                f"pyg-schnet: could not import torch-cluster ({type(exc).__name__}: {exc}); radius graphs fall "
                "back to plain PyTorch (same pairs, slower on large systems)",
                RuntimeWarning,
                stacklevel=2,
            )
    return torch_cluster


def scatter_add(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    r"""Sum the rows of ``src`` into ``dim_size`` buckets: :math:`out_k = \sum_{e: index_e = k} src_e`.

    Args:
        src: values ``[E, ...]``.
        index: bucket of each row, ``[E]`` long.
        dim_size: number of buckets (rows of the output).
    """
    if USE_TORCH_SCATTER:
        return torch_scatter.scatter_add(src, index, dim=0, dim_size=dim_size)
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)
