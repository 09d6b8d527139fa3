r"""Data-parallel training across processes (``torchrun``), exact against one process.

Under ``torchrun`` (or any launcher that sets the same environment variables) every process, or
*rank*, holds a full copy of the model; :class:`~torch.nn.parallel.DistributedDataParallel` (DDP)
sums the gradients over the ranks after each backward pass. Without those variables nothing here
does anything and training runs as one process.

**Guarantee.** A run on :math:`k` processes takes the same optimizer steps as a run on one process
with the same ``--batch-size`` and ``--seed``, and reaches the same weights up to floating-point
summation order:

* ``batch_size`` is the *global* batch :math:`B`. Every rank draws the same seeded permutation (the
  same generator, seeded from ``--seed``, consumed exactly as the one-process data loader consumes
  it), cuts it into the same global batches and takes its contiguous slice of each
  (:func:`shard_bounds`: slices differ by at most one molecule; a slice may be empty when
  :math:`B < k`).
* The loss of Eq. 5 is normalised by the global number of molecules. Rank :math:`r` back-propagates
  :math:`\frac{k}{B} \sum_{m \in r} \ell_m`; DDP averages gradients over the :math:`k` ranks, so the
  update uses :math:`\frac{1}{B} \sum_{m} \nabla \ell_m`, the gradient of the one-process batch mean
  (the force term is already normalised per molecule by its own atom count, so uneven slices need
  nothing more).
* Validation and test sets are cut into contiguous shards without padding or duplicates
  (:func:`shard`); the sums of :class:`~pyg_schnet.train.metrics.ErrorAccumulator` are all-reduced
  (:func:`reduce_errors`), so the metrics equal the one-process metrics.
* Decisions that depend on a clock (time cap, the epoch-duration forecast, ``batching='auto'``) are
  taken on rank 0 and broadcast (:func:`broadcast_object`); the others (early stopping, best epoch)
  follow from all-reduced values that are identical on every rank. Every rank stops in the same epoch.
* Every parameter enters every rank's loss (with weight zero where the batch does not reach it), so
  DDP never waits for a gradient that does not come: a force-only loss (``energy_weight=0``, whose
  gradient misses the last bias) and an empty slice both work, with ``find_unused_parameters=False``.

**Environment.** ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. Two optional variables (or the arguments of :func:`init_from_env`) override defaults:

* ``PYG_SCHNET_DIST_BACKEND``: ``gloo`` or ``nccl`` (default: ``nccl`` for a CUDA device, else ``gloo``);
* ``PYG_SCHNET_DIST_TIMEOUT_S``: seconds a collective may wait for the other ranks before it raises
  (default :data:`DEFAULT_TIMEOUT_S`, 30 minutes: rank 0 prepares a data set while the others wait).

A rank that raises ends its process with the traceback; ``torchrun`` (like
:func:`torch.multiprocessing.spawn`) then stops the other ranks, so the job ends with that message.
Ranks left without a launcher that ends them raise when the collective timeout runs out.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader as IndexLoader
from torch.utils.data import Subset

from pyg_schnet.train.loss import per_molecule_loss
from pyg_schnet.train.metrics import ErrorAccumulator
from pyg_schnet.train.predict import predict

#: Environment variable that overrides the backend (``gloo`` or ``nccl``).
ENV_BACKEND = "PYG_SCHNET_DIST_BACKEND"
#: Environment variable that overrides the collective timeout, in seconds.
ENV_TIMEOUT = "PYG_SCHNET_DIST_TIMEOUT_S"
#: Default collective timeout in seconds (torch's own default for gloo).
DEFAULT_TIMEOUT_S = 1800.0
#: Backends this module accepts.
BACKENDS = ("gloo", "nccl")
#: The variables a launcher must set for :func:`init_from_env` to start a process group.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``world_size`` processes, this one is ``rank`` (``local_rank`` on
    its node); ``backend`` is ``None`` without a process group."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def enabled(self) -> bool:
        """Whether training is data-parallel (more than one process)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only rank that writes files and prints."""
        return self.rank == 0

    def as_record(self) -> dict:
        """``{"world_size", "backend"}`` for ``results.json``."""
        return {"world_size": self.world_size, "backend": self.backend}


# ------------------------------------------------------------------------------------ set-up
def launched_by_torchrun() -> bool:
    """Whether the launcher variables (:data:`LAUNCHER_VARIABLES`) are all set."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def choose_backend(device: str | torch.device = "cpu", backend: Optional[str] = None) -> str:
    """``backend``, else ``$PYG_SCHNET_DIST_BACKEND``, else ``nccl`` for CUDA devices and ``gloo``
    otherwise. ``'auto'`` means "not given"."""
    chosen = backend if backend not in (None, "", "auto") else os.environ.get(ENV_BACKEND, "auto")
    if chosen in ("", "auto"):
        chosen = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if chosen not in BACKENDS:
        raise ValueError(f"distributed backend must be one of {BACKENDS} (or auto), got {chosen!r}")
    if chosen == "nccl" and torch.device(device).type != "cuda":
        raise ValueError(f"backend nccl needs a CUDA device, got device {str(device)!r}; use gloo")
    return chosen


def timeout_seconds(timeout_s: Optional[float] = None) -> float:
    """``timeout_s``, else ``$PYG_SCHNET_DIST_TIMEOUT_S``, else :data:`DEFAULT_TIMEOUT_S`."""
    if timeout_s is None:
        raw = os.environ.get(ENV_TIMEOUT)
        if raw is None:
            return DEFAULT_TIMEOUT_S
        try:
            timeout_s = float(raw)
        except ValueError:
            raise ValueError(f"${ENV_TIMEOUT} must be a number of seconds, got {raw!r}") from None
    if not timeout_s > 0:
        raise ValueError(f"the collective timeout must be positive seconds, got {timeout_s}")
    return float(timeout_s)


def current() -> DistInfo:
    """This process's :class:`DistInfo` (one process when no process group is initialised)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return DistInfo()
    rank = torch.distributed.get_rank()
    return DistInfo(
        world_size=torch.distributed.get_world_size(),
        rank=rank,
        local_rank=int(os.environ.get("LOCAL_RANK", rank)),
        backend=str(torch.distributed.get_backend()),
    )


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {raw!r}") from None


def init_from_env(
    device: str | torch.device = "cpu", backend: Optional[str] = None, timeout_s: Optional[float] = None
) -> DistInfo:
    """Starts the process group from the launcher's variables (``init_method='env://'``).

    Does nothing without them (one process), and returns the existing group when one is initialised
    already (idempotent). On CUDA the rank uses device ``cuda:LOCAL_RANK``. The group is destroyed
    when the process exits.

    Args:
        device: the training device (picks the default backend).
        backend: ``'gloo'``, ``'nccl'`` or ``None``/``'auto'`` (:func:`choose_backend`).
        timeout_s: collective timeout in seconds (:func:`timeout_seconds`).
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return current()
    if not launched_by_torchrun():
        return DistInfo()
    if not torch.distributed.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    world_size, rank, local_rank = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank < world_size:
        raise ValueError(f"$RANK = {rank} must lie in 0..$WORLD_SIZE-1 = {world_size - 1}")
    chosen = choose_backend(device, backend)
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(
        backend=chosen,
        init_method="env://",
        world_size=world_size,
        rank=rank,
        timeout=datetime.timedelta(seconds=timeout_seconds(timeout_s)),
    )
    atexit.register(_destroy)
    return current()


def record(fn: Callable) -> Callable:
    """Decorates an entry point so that under ``torchrun`` an exception is written to the error file
    the launcher reads: its summary then names the failing rank and prints that rank's traceback
    (:func:`torch.distributed.elastic.multiprocessing.errors.record`). Without torchrun (decided when
    the module is imported, after the launcher has set its variables): ``fn`` itself."""
    if not launched_by_torchrun():
        return fn
    try:
        from torch.distributed.elastic.multiprocessing.errors import record as elastic_record
    except ImportError:  # a torch build without torch.distributed
        return fn
    return elastic_record(fn)


def _destroy() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def local_device(device: str, info: DistInfo) -> str:
    """``'cuda'`` becomes ``'cuda:LOCAL_RANK'`` in data-parallel runs; other devices stay."""
    dev = torch.device(device)
    if info.enabled and dev.type == "cuda" and dev.index is None:
        return f"cuda:{info.local_rank}"
    return str(dev)


# ---------------------------------------------------------------------------------- sharding
def shard_bounds(count: int, rank: int, world_size: int) -> Tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous share of ``count`` items: the shares partition
    ``0..count-1`` in rank order and differ in size by at most one (no padding, no duplicates)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank} and world_size {world_size}")
    return rank * count // world_size, (rank + 1) * count // world_size


def shard(dataset, info: DistInfo):
    """This rank's contiguous shard of ``dataset`` (the data set itself in a one-process run)."""
    if not info.enabled:
        return dataset
    start, stop = shard_bounds(len(dataset), info.rank, info.world_size)
    return Subset(dataset, range(start, stop))


@dataclass
class LocalBatch:
    """This rank's slice of one global training batch: a PyG ``Batch`` (``None`` when the slice is
    empty) and the number of molecules of the whole global batch."""

    data: Any
    global_size: int


class ShardedBatches:
    """The training batches of one rank: each global batch is drawn exactly as the one-process
    loader draws it (a :class:`torch.utils.data.DataLoader` with ``shuffle=True`` on ``generator``
    over the indices), and this rank keeps its :func:`shard_bounds` slice of it.

    Iterating yields :class:`LocalBatch` objects; ``len()`` is the number of global batches.
    """

    def __init__(self, dataset, batch_size: int, generator: torch.Generator, info: DistInfo) -> None:
        self.dataset = dataset
        self.info = info
        self._indices = IndexLoader(
            range(len(dataset)), batch_size=batch_size, shuffle=True, generator=generator, collate_fn=list
        )

    def __len__(self) -> int:
        return len(self._indices)

    def __iter__(self) -> Iterator[LocalBatch]:
        # iter() starts the index loader at once, as iter() of a DataLoader does (it draws a base seed
        # from the generator then): callers that call iter() more than once (tqdm.auto does) then
        # consume the generator exactly as they do with the one-process loader
        return self._slices(iter(self._indices))

    def _slices(self, global_batches: Iterator[List[int]]) -> Iterator[LocalBatch]:
        from torch_geometric.data import Batch

        for global_batch in global_batches:
            start, stop = shard_bounds(len(global_batch), self.info.rank, self.info.world_size)
            local = global_batch[start:stop]
            data = Batch.from_data_list([self.dataset[i] for i in local]) if local else None
            yield LocalBatch(data, len(global_batch))


# ------------------------------------------------------------------------------------ DDP step
class ShardLoss(nn.Module):
    r"""The module DDP wraps: a rank's share of the global-batch loss.

    ``forward(batch, scale, batching)`` returns ``(loss, energy, forces)`` with
    ``loss = scale * sum_{m in batch} ell_m + 0 * sum_p p.sum()`` (Eq. 5 per molecule, float64); the
    zero-weighted term gives every parameter a gradient (exactly zero) on every rank, so parameters
    that the batch does not reach and empty slices (``batch=None``: ``energy`` and ``forces`` are
    ``None``) cannot stall DDP's gradient reduction.
    """

    def __init__(self, model: nn.Module, rho: float, energy_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.rho = float(rho)
        self.energy_weight = float(energy_weight)

    def forward(
        self, batch, scale: float, batching: str = "sparse"
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        anchor = torch.stack([p.sum().double() for p in params]).sum() * 0.0
        if batch is None:
            return anchor, None, None
        with_forces = self.rho > 0
        energy, forces = predict(self.model, batch, with_forces=with_forces, batching=batching)
        per_molecule = per_molecule_loss(
            energy,
            batch.energy,
            batch.batch,
            self.rho,
            forces,
            batch.force if with_forces else None,
            self.energy_weight,
        )
        return per_molecule.sum() * scale + anchor, energy, forces


def wrap_model(model: nn.Module, info: DistInfo, rho: float, energy_weight: float = 1.0) -> nn.Module:
    """DDP around :class:`ShardLoss` of ``model`` (which keeps its own parameters: checkpoints and the
    EMA see the plain model). The constructor broadcasts rank 0's parameters to every rank."""
    from torch.nn.parallel import DistributedDataParallel

    # the gradient of an [1, F] weight can come out of autograd with strides (1, 1) instead of (F, 1):
    # the same layout for a size-1 row; DDP copies it into its bucket and would warn every run
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    module = ShardLoss(model, rho, energy_weight)
    device = next(model.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    # the buffers (standardisation) are equal on every rank and never trained: synced once at start
    import inspect

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        buffers = {"forward_sync_buffers": False}
    else:  # torch < 2.13
        buffers = {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=False, **buffers)


def shard_loss(ddp: nn.Module, local: LocalBatch, info: DistInfo, device: torch.device, batching: str):
    """``(batch, loss, energy, forces)`` of one rank's slice; ``loss`` back-propagates to the
    gradient of the global batch mean (see the module docstring)."""
    batch = local.data.to(device) if local.data is not None else None
    loss, energy, forces = ddp(batch, info.world_size / local.global_size, batching)
    return batch, loss, energy, forces


# --------------------------------------------------------------------------------- collectives
def global_batch_loss(loss: Tensor, info: DistInfo) -> Tensor:
    """The loss of the whole global batch from each rank's :func:`shard_loss` (all-reduced sum over
    ranks divided by their number; identical on every rank, and non-finite on every rank when one
    rank's is); ``loss`` itself in a one-process run."""
    if not info.enabled:
        return loss
    total = loss.detach().double().reshape(1).to(_comm_device(info))
    torch.distributed.all_reduce(total)
    return (total / info.world_size)[0]


# --------------------------------------------------------------------------------- collectives
def _comm_device(info: DistInfo) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if info.backend == "nccl" else torch.device("cpu")


def reduce_errors(acc: ErrorAccumulator, info: DistInfo) -> ErrorAccumulator:
    """Sums the running sums of ``acc`` over all ranks (in place; every rank gets the totals), and
    collects kept predictions on rank 0 in rank order, which is the data set's order for
    :func:`shard`. A one-process run returns ``acc`` untouched."""
    if not info.enabled:
        return acc
    totals = acc.totals().to(_comm_device(info))
    torch.distributed.all_reduce(totals)
    acc.set_totals(totals)
    if acc.keep_predictions:
        gathered: Optional[List[Any]] = [None] * info.world_size if info.is_main else None
        torch.distributed.gather_object(acc.predictions, gathered, dst=0)
        if info.is_main:
            acc.predictions = {key: [t for part in gathered for t in part[key]] for key in acc.predictions}
    return acc


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a one-process run)."""
    if not info.enabled:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's ``flag`` on every rank, as one small tensor broadcast (cheap enough for every step)."""
    if not info.enabled:
        return flag
    box = torch.tensor([1.0 if flag else 0.0], device=_comm_device(info))
    torch.distributed.broadcast(box, src=0)
    return bool(box.item() == 1.0)


def barrier(info: DistInfo) -> None:
    """Waits for every rank (no-op in a one-process run)."""
    if info.enabled:
        torch.distributed.barrier()


@contextlib.contextmanager
def main_process_first(info: Optional[DistInfo] = None) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. downloading or processing a data set, linking a file); the
    other ranks wait and then run it, finding the work done. A failure on rank 0 ends the job there."""
    info = info if info is not None else current()
    if info.enabled and not info.is_main:
        barrier(info)
    yield
    if info.enabled and info.is_main:
        barrier(info)


def all_equal(tensors: Sequence[Tensor], info: DistInfo) -> bool:
    """Whether ``tensors`` are bitwise equal on every rank (a check for tests and debugging)."""
    if not info.enabled:
        return True
    flat = torch.cat([t.detach().reshape(-1).double() for t in tensors]).to(_comm_device(info))
    low, high = flat.clone(), flat.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    same = torch.tensor([float(torch.equal(low, high))], device=flat.device)
    torch.distributed.all_reduce(same, op=torch.distributed.ReduceOp.MIN)
    return bool(same.item() == 1.0)
