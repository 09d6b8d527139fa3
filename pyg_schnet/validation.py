"""Checks on model inputs and settings: bad input raises a clear error naming the atom or field at
fault, never NaN, a silent fix or an allocator error deep inside the model."""

from __future__ import annotations

import math
import numbers
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Mapping, Optional, Tuple

import torch
from torch import Tensor

#: Largest accepted absolute Cartesian coordinate, in Angstrom. Real molecules and simulation cells
#: are far smaller; coordinates beyond this are unit mistakes (Bohr * 1e10, metres) or corrupt files,
#: and float32 distances between such positions lose all precision (at 3e19 they overflow).
MAX_ABS_POSITION = 1.0e4
#: Largest atomic number of a known element (oganesson).
MAX_ATOMIC_NUMBER = 118
#: Largest seed accepted: the largest numpy's and torch's generators both take (torch: 64-bit unsigned).
MAX_SEED = 2**64 - 1


_TRUSTED: ContextVar[bool] = ContextVar("pyg_schnet_trusted_inputs", default=False)


@contextmanager
def trusted_inputs() -> Iterator[None]:
    """Run the block with the *value* checks of model inputs off: the one switch of this module.

    Inside it, :func:`check_inputs`, :func:`check_distinct_positions` and the dense path's
    :func:`~pyg_schnet.models.dense.check_dense_inputs` check only shapes and dtypes (Python, free) and
    skip what reads the device (atomic numbers in range, finite and bounded positions, a well-formed
    batch vector, coincident atoms): each of those costs a host synchronisation per forward. It is
    meant for data validated when it was loaded (:meth:`pyg_schnet.datasets.table.AtomsTable.validate`
    checks the same, and more), i.e. the trainer's steps; every other call keeps all checks. The switch
    is a :class:`contextvars.ContextVar`: it holds for the current thread (or task) only.
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def inputs_trusted() -> bool:
    """Whether the value checks are off (inside :func:`trusted_inputs`)."""
    return _TRUSTED.get()


def _where(batch: Tensor, atom: int) -> str:
    return f"atom {atom} (molecule {int(batch[atom])})"


def _require_tensor(name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__module__}.{type(value).__name__}; "
            f"convert it with torch.as_tensor({name})"
        )


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def check_inputs(z: Tensor, pos: Tensor, batch: Optional[Tensor], max_z: int) -> Tensor:
    r"""Validate ``z`` ``[N]``, ``pos`` ``[N, 3]`` and ``batch`` ``[N]``; return the batch vector
    (``int64``; zeros when ``batch`` is ``None``).

    Accepted: ``z`` of any integer dtype with values in ``1 .. max_z - 1``; ``pos`` floating point,
    finite, with :math:`|r_{i\alpha}| \le` :data:`MAX_ABS_POSITION` Angstrom; ``batch`` of any integer
    dtype numbering the molecules ``0 .. G - 1`` in order, without gaps (atoms of one molecule
    contiguous). A gap would create molecules without atoms (``[0]*9 + [10**8]*9`` asks for 10^8
    energies), so it is refused.

    Raises:
        TypeError: an argument that is not a tensor (e.g. a numpy array).
        ValueError: wrong shapes or dtypes, a bad batch vector, atomic numbers outside the embedding,
            non-finite or absurdly large positions, each time naming the first atom at fault.

    On valid input the checks cost one device-to-host synchronisation; inside :func:`trusted_inputs`
    only shapes and dtypes are checked (none).
    """
    _require_tensor("z", z)
    _require_tensor("pos", pos)
    if z.dim() != 1 or not _is_integer_dtype(z.dtype):
        raise ValueError(f"z must be a 1-D integer tensor of atomic numbers, got shape {tuple(z.shape)} and {z.dtype}")
    if pos.dim() != 2 or pos.size(-1) != 3:
        raise ValueError(f"pos must have shape [num_atoms, 3], got {tuple(pos.shape)}")
    if not pos.dtype.is_floating_point:
        raise ValueError(f"pos must be a floating-point tensor of positions in Angstrom, got {pos.dtype}")
    if pos.size(0) != z.size(0):
        raise ValueError(f"z has {z.size(0)} atoms but pos has {pos.size(0)}")
    if batch is None:
        batch = torch.zeros(z.size(0), dtype=torch.long, device=z.device)
    else:
        _require_tensor("batch", batch)
        if batch.dim() != 1 or not _is_integer_dtype(batch.dtype):
            raise ValueError(
                "batch must be a 1-D integer tensor of molecule indices, "
                f"got shape {tuple(batch.shape)} and {batch.dtype}"
            )
        if batch.size(0) != z.size(0):
            raise ValueError(f"batch has {batch.size(0)} entries but z has {z.size(0)} atoms")
        batch = batch.long()
    if z.numel() == 0 or inputs_trusted():
        return batch
    step = batch[1:] - batch[:-1]
    bad_batch = (batch[0] != 0) | ((step < 0) | (step > 1)).any()
    bad_z = (z < 1) | (z >= max_z)
    # NaN compares false, so this flags non-finite and too distant coordinates at once
    bad_pos = ~(pos.detach().abs() <= MAX_ABS_POSITION).all(dim=-1)
    if not bool(torch.stack([bad_batch, bad_z.any(), bad_pos.any()]).any()):  # the one sync
        return batch
    if bool(bad_batch):
        _raise_batch_error(batch, step)
    if bool(bad_z.any()):
        atom = int(bad_z.nonzero()[0])
        raise ValueError(
            f"{_where(batch, atom)} has atomic number {int(z[atom])}, outside 1..{max_z - 1} of the embedding"
        )
    atom = int(bad_pos.nonzero()[0])
    if not bool(torch.isfinite(pos[atom]).all()):
        raise ValueError(f"{_where(batch, atom)} has a non-finite position {pos[atom].tolist()}")
    raise ValueError(
        f"{_where(batch, atom)} has position {pos[atom].tolist()}, beyond +-{MAX_ABS_POSITION:g} Angstrom "
        "(MAX_ABS_POSITION): a unit mistake or a corrupt coordinate"
    )


def _raise_batch_error(batch: Tensor, step: Tensor) -> None:
    first = int(batch[0])
    if first < 0:
        raise ValueError(f"batch is negative at atom 0 (molecule {first}); molecules are numbered 0..G-1")
    if first > 0:
        raise ValueError(
            f"batch must number the molecules 0..G-1 without gaps: atom 0 belongs to molecule {first}, "
            f"so molecule 0 would have no atoms"
        )
    down = (step < 0).nonzero()
    jump = (step > 1).nonzero()
    if down.numel() and (not jump.numel() or int(down[0]) < int(jump[0])):
        atom = int(down[0]) + 1
        raise ValueError(
            f"batch must be sorted (atoms of one molecule contiguous, molecules in order): "
            f"atom {atom} has molecule {int(batch[atom])} after molecule {int(batch[atom - 1])}"
        )
    atom = int(jump[0]) + 1
    raise ValueError(
        f"batch must number the molecules 0..G-1 without gaps: atom {atom} has molecule {int(batch[atom])} "
        f"after molecule {int(batch[atom - 1])}, so molecule {int(batch[atom - 1]) + 1} would have no atoms"
    )


def prepare_inputs(
    z: Tensor, pos: Tensor, batch: Optional[Tensor], max_z: int, dtype: torch.dtype
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`check_inputs`, then ``z`` and ``batch`` as ``int64`` and ``pos`` in the model's ``dtype``.

    Converting ``pos`` (e.g. float64 positions into a float32 model) is differentiable, so forces and
    other gradients still reach the caller's tensor, in its own dtype.
    """
    batch = check_inputs(z, pos, batch, max_z)
    return z.long(), pos.to(dtype), batch


# ------------------------------------------------------------------------------------ settings
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    """Raise :class:`ValueError` naming ``owner.name`` unless ``value`` is an integer ``>= minimum``."""
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")


def check_finite(
    owner: str,
    name: str,
    value: Any,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise :class:`ValueError` naming ``owner.name`` unless ``value`` is a finite real number in the
    interval given by ``low`` / ``high`` (closed unless ``*_open``)."""
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        interval = ""
        if low is not None or high is not None:
            left = "(" if low_open else "["
            right = ")" if high_open or high is None else "]"
            interval = (
                f" in {left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
            )
        raise ValueError(f"{owner}: {name} must be a finite number{interval}, got {value!r}")


def check_model_config(config: Mapping[str, Any]) -> None:
    """Validate the constructor arguments of :class:`pyg_schnet.SchNet` (its ``config`` dict).

    Sizes (``hidden_channels``, ``num_filters``, ``num_gaussians``, ``output_hidden``) must be positive
    integers, ``num_interactions`` an integer ``>= 0`` (0: the embedding alone), ``max_z`` at least 2
    (hydrogen must fit), the Gaussian grid finite with ``rbf_stop > rbf_start`` and ``gamma > 0``
    (Angstrom^-2), ``cutoff`` ``None`` or a positive finite distance, ``max_num_neighbors`` ``None`` or
    a positive integer, ``filter_activation`` a bool, ``output`` and ``extra_heads`` as
    :func:`check_heads` says.
    """
    owner = "SchNet"
    for name in ("hidden_channels", "num_filters", "num_gaussians", "output_hidden"):
        if name in config:
            check_positive_int(owner, name, config[name])
    if "num_interactions" in config:
        check_positive_int(owner, "num_interactions", config["num_interactions"], minimum=0)
    if "max_z" in config:
        check_positive_int(owner, "max_z (atomic numbers 1..max_z-1 are accepted)", config["max_z"], minimum=2)
    for name in ("rbf_start", "rbf_stop"):
        if name in config:
            check_finite(owner, name, config[name])
    if "rbf_start" in config and "rbf_stop" in config and not config["rbf_stop"] > config["rbf_start"]:
        raise ValueError(f"{owner}: rbf_stop ({config['rbf_stop']!r}) must exceed rbf_start ({config['rbf_start']!r})")
    if "gamma" in config:
        check_finite(owner, "gamma", config["gamma"], low=0.0, low_open=True)
    if config.get("cutoff") is not None:
        check_finite(owner, "cutoff", config["cutoff"], low=0.0, low_open=True)
    if config.get("max_num_neighbors") is not None:
        check_positive_int(owner, "max_num_neighbors", config["max_num_neighbors"])
    if "filter_activation" in config and not isinstance(config["filter_activation"], bool):
        raise TypeError(f"{owner}: filter_activation must be True or False, got {config['filter_activation']!r}")
    if config.get("head_activation", "shifted_softplus") not in ("shifted_softplus", "silu"):
        raise ValueError(
            f"{owner}: head_activation must be 'shifted_softplus' or 'silu', got {config['head_activation']!r}"
        )
    if config.get("rbf_linspace_dtype", "float64") not in ("float64", "float32"):
        raise ValueError(
            f"{owner}: rbf_linspace_dtype must be 'float64' or 'float32', got {config['rbf_linspace_dtype']!r}"
        )
    if "output" in config or "extra_heads" in config:
        check_heads(config.get("output", "extensive"), config.get("extra_heads", ()))


#: What a SchNet's primary output (``SchNetConfig.output``) may be: ``"extensive"`` (a sum of atom
#: contributions: energies, the paper's), ``"intensive"`` (their mean over the structure's atoms: HOMO,
#: LUMO, gap) or ``"dipole_moment"`` (the norm of the dipole of latent atomic charges, e*Angstrom).
OUTPUT_KINDS: Tuple[str, ...] = ("extensive", "intensive", "dipole_moment")
#: What an extra head (``SchNetConfig.extra_heads``) may be: the output kinds, and ``"dipole"``, the
#: dipole vector ``[G, 3]`` itself (e*Angstrom).
HEAD_KINDS: Tuple[str, ...] = ("extensive", "intensive", "dipole", "dipole_moment")
#: Names no extra head may take: the primary output's (``"energy"``) and the fields a structure or a
#: PyG batch already carries (a head's target is read from ``data.<name>``).
RESERVED_HEAD_NAMES: Tuple[str, ...] = (
    "energy",
    "force",
    "forces",
    "stress",
    "pos",
    "z",
    "batch",
    "ptr",
    "cell",
    "pbc",
    "charge",
    "x",
    "y",
    "edge_index",
    "num_nodes",
    "idx",
)
_HEAD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize_extra_heads(value: Any) -> Tuple[Tuple[str, str], ...]:
    """``extra_heads`` as a tuple of ``(name, kind)`` tuples (a ``model.pt`` or JSON file may hold
    lists); :class:`TypeError` when it is not a sequence of pairs. The names and kinds are checked by
    :func:`check_model_config`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"SchNet: extra_heads must be a sequence of (name, kind) pairs, e.g. (('dipole', 'dipole'),), got {value!r}"
        )
    pairs = []
    for item in value:
        if isinstance(item, (str, bytes)) or not isinstance(item, (list, tuple)) or len(item) != 2:
            raise TypeError(f"SchNet: each entry of extra_heads must be a (name, kind) pair, got {item!r}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def check_heads(output: Any, extra_heads: Any) -> None:
    """Validate ``SchNetConfig.output`` (one of :data:`OUTPUT_KINDS`) and ``extra_heads`` (pairs of a
    name, an identifier not in :data:`RESERVED_HEAD_NAMES` and not repeated, and a kind of
    :data:`HEAD_KINDS`)."""
    if output not in OUTPUT_KINDS:
        raise ValueError(f"SchNet: output must be one of {', '.join(OUTPUT_KINDS)}, got {output!r}")
    seen = set()
    for name, kind in normalize_extra_heads(extra_heads):
        if not isinstance(name, str) or not _HEAD_NAME.fullmatch(name):
            raise ValueError(
                f"SchNet: extra head name {name!r} must be an identifier (letters, digits, '_'; it names "
                "the target field data.<name> and the metrics <name>_mae)"
            )
        if name in RESERVED_HEAD_NAMES:
            raise ValueError(
                f"SchNet: extra head name {name!r} is reserved (the primary output is 'energy'; the data "
                f"already carry {', '.join(n for n in RESERVED_HEAD_NAMES if n != 'energy')}): choose another"
            )
        if name in seen:
            raise ValueError(f"SchNet: duplicate extra head name {name!r}: each head needs its own name")
        seen.add(name)
        if kind not in HEAD_KINDS:
            raise ValueError(f"SchNet: extra head {name!r} has kind {kind!r}; the kinds are {', '.join(HEAD_KINDS)}")


def check_standardization(mean: Any, std: Any, atomref: Optional[Tensor] = None) -> None:
    """Raise :class:`ValueError` unless ``mean`` is finite, ``std`` finite and positive, and every
    ``atomref`` entry finite (naming the first bad element)."""
    check_finite("standardization", "mean", float(mean) if isinstance(mean, Tensor) else mean)
    check_finite("standardization", "std", float(std) if isinstance(std, Tensor) else std, low=0.0, low_open=True)
    if atomref is not None:
        ref = torch.as_tensor(atomref).detach().flatten()
        bad = ~torch.isfinite(ref)
        if bool(bad.any()):
            element = int(bad.nonzero()[0])
            raise ValueError(
                f"standardization: atomref of atomic number {element} is {float(ref[element])}, not finite"
            )


def check_distinct_positions(distances: Tensor, edge_index: Tensor, batch: Tensor) -> None:
    """Raise :class:`ValueError` when two distinct atoms of a molecule sit at the same position
    (not checked inside :func:`trusted_inputs`)."""
    if inputs_trusted():
        return
    same = distances == 0
    if bool(same.any()):
        e = int(same.nonzero()[0])
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        raise ValueError(
            f"atoms {min(i, j)} and {max(i, j)} of molecule {int(batch[i])} are at the same position "
            "(distance 0): the energy is not differentiable there"
        )


def check_device(owner: str, device: Any) -> torch.device:
    """``device`` as a :class:`torch.device`, or :class:`ValueError` when it is malformed or names an
    accelerator this machine does not have (e.g. ``'cuda'`` without a CUDA GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{owner}: device {device!r} is not a torch device ({exc})") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{owner}: device {device!r} was asked for, but no CUDA GPU is available here; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{owner}: device {device!r} was asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{owner}: device {device!r} was asked for, but MPS is not available here; use 'cpu'")
    return dev
