"""Seeded train / validation / test splits as in the paper's protocol.

Schütt et al. (2017), section 5: "we split the data into a training set of given size N and use a
validation set of 1,000 examples for early stopping. The remaining data is used as test set."
:func:`random_split` draws exactly that from one seeded permutation, and :class:`SplitIndices`
saves the index tensors next to the results they produced.

A data set whose frames repeat (identical atoms and positions, e.g. an MD17 file with a frame stored
twice) would leak copies of one frame into training and test: :func:`repeated_frames` finds them,
and ``distinct=`` splits only the first copy of each frame.
"""

from __future__ import annotations

import io
import math
import os
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pyg_schnet.datasets._io import atomic_write_bytes
from pyg_schnet.io.files import open_npz

PathLike = Union[str, "os.PathLike[str]"]


class SplitIndices(NamedTuple):
    """Disjoint index tensors (``torch.long``) into one data set."""

    train: Tensor
    val: Tensor
    test: Tensor

    def save(self, path: PathLike) -> None:
        """Write ``train``, ``val`` and ``test`` to an ``.npz`` file at ``path`` (atomically)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            train=self.train.cpu().numpy().astype(np.int64),
            val=self.val.cpu().numpy().astype(np.int64),
            test=self.test.cpu().numpy().astype(np.int64),
        )
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: PathLike) -> "SplitIndices":
        """Read a file written by :meth:`save`; a missing key or a non-integer array is an error."""
        with open_npz(path) as f:
            missing = [k for k in ("train", "val", "test") if k not in f.files]
            if missing:
                raise KeyError(f"{os.fspath(path)}: split file lacks {missing} (has {sorted(f.files)})")
            parts = {}
            for key in ("train", "val", "test"):
                arr = f[key]
                if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                    raise ValueError(
                        f"{os.fspath(path)}: '{key}' must be a 1-D integer array, got shape {arr.shape} "
                        f"and dtype {arr.dtype}"
                    )
                parts[key] = torch.from_numpy(arr.astype(np.int64))
        return cls(**parts)

    def sizes(self) -> tuple[int, int, int]:
        """``(len(train), len(val), len(test))``."""
        return (self.train.numel(), self.val.numel(), self.test.numel())


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def count_of(name: str, value: Union[int, float], num_examples: int) -> int:
    """A size given as a count (an integer ``>= 0``) or as a fraction of ``num_examples`` (a float in
    ``(0, 1]``, rounded down: ``0.8`` of 1,499 is 1,199) -> the count.

    Raises:
        ValueError: naming ``name``, for a negative count, a fraction outside ``(0, 1]``, a bool or a
            non-number.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a count (800) or a fraction (0.8), got {value!r}")
    if isinstance(value, (int, np.integer)):
        return _check_count(name, value)
    if isinstance(value, (float, np.floating)):
        if not 0.0 < float(value) <= 1.0:
            raise ValueError(f"{name} must be a count (an integer) or a fraction in (0, 1], got {value!r}")
        return int(math.floor(float(value) * num_examples))
    raise ValueError(f"{name} must be a count (800) or a fraction (0.8), got {value!r}")


def split_sizes(
    num_examples: int,
    n_train: Union[int, float],
    n_val: Union[int, float],
    n_test: Optional[Union[int, float]] = None,
) -> Tuple[int, int, Optional[int]]:
    """``(n_train, n_val, n_test)`` as counts for :func:`random_split`, each given as a count or a fraction
    of ``num_examples`` (:func:`count_of`); ``n_test=None`` stays ``None`` (the rest). Whether they fit is
    :func:`random_split`'s check."""
    num_examples = _check_count("num_examples", num_examples)
    train = count_of("n_train", n_train, num_examples)
    val = count_of("n_val", n_val, num_examples)
    test = None if n_test is None else count_of("n_test", n_test, num_examples)
    return train, val, test


def repeated_frames(z: Tensor, pos: Tensor, num_atoms: Tensor) -> Tensor:
    """For each frame, the index of the first frame with the same atomic numbers and bit-for-bit the
    same positions (its own index when it repeats no earlier frame), ``[M]`` long.

    ``z`` ``[N]`` and ``pos`` ``[N, 3]`` hold the frames' atoms one frame after the other,
    ``num_atoms`` ``[M]`` their counts. Frames are compared per atom count through a sort of their
    bytes (about 4 s for 555,000 MD17 ethanol frames on one core).
    """
    counts = torch.as_tensor(num_atoms, dtype=torch.long).cpu().numpy()
    first = np.arange(counts.size, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    z_np = z.detach().cpu().numpy().astype(np.int64)
    pos_np = np.ascontiguousarray(pos.detach().cpu().numpy())
    for n in np.unique(counts):
        frames = np.nonzero(counts == n)[0]
        atoms = offsets[frames][:, None] + np.arange(n)[None, :]
        keys = np.concatenate(
            [
                z_np[atoms].view(np.uint8).reshape(frames.size, -1),
                pos_np[atoms].view(np.uint8).reshape(frames.size, -1),
            ],
            axis=1,
        )
        rows = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.shape[1]))).ravel()
        _, index, inverse = np.unique(rows, return_index=True, return_inverse=True)
        first[frames] = frames[index[inverse.ravel()]]
    return torch.from_numpy(first)


def describe_repeats(first: Tensor, what: str = "frames", shown: int = 5) -> Optional[str]:
    """``'3 of 1,503 frames repeat earlier ones (frame 1500 = frame 0, ...)'`` for the result of
    :func:`repeated_frames`, or ``None`` when no frame repeats."""
    first_np = first.cpu().numpy()
    repeats = np.nonzero(first_np != np.arange(first_np.size))[0]
    if not repeats.size:
        return None
    pairs = ", ".join(f"{int(r)} = {int(first_np[r])}" for r in repeats[:shown])
    more = ", ..." if repeats.size > shown else ""
    distinct = int((first_np == np.arange(first_np.size)).sum())
    return (
        f"{repeats.size:,} of {first_np.size:,} {what} repeat earlier ones bit for bit (same atoms and "
        f"positions; {what} {pairs}{more}), {distinct:,} are distinct"
    )


def random_split(
    num_examples: int,
    n_train: int,
    n_val: int = 1000,
    seed: int = 0,
    n_test: Optional[int] = None,
    distinct: Optional[Union[Tensor, Sequence[int]]] = None,
) -> SplitIndices:
    """Split ``range(num_examples)`` into ``n_train`` training, ``n_val`` validation and test indices.

    One permutation from ``torch.Generator().manual_seed(seed)`` is cut into consecutive pieces:
    the first ``n_train`` indices train, the next ``n_val`` validate, and the test set is the rest
    (or the next ``n_test`` when given). The same arguments always give the same split, and a
    larger ``n_train`` with the same seed extends the smaller training set.

    ``distinct`` (sorted indices, e.g. the frames ``i`` with ``repeated_frames(...)[i] == i``) splits
    only those examples, so that no two sets share a copy of one frame; the others are in no set.

    Raises:
        ValueError: when the requested sizes do not fit into ``num_examples`` (or ``distinct``), or
            ``distinct`` holds indices outside ``range(num_examples)`` or repeats one.
    """
    num_examples = _check_count("num_examples", num_examples)
    if distinct is not None:
        chosen = torch.as_tensor(distinct, dtype=torch.long).flatten()
        if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= num_examples):
            raise ValueError(f"distinct holds indices outside range({num_examples})")
        if torch.unique(chosen).numel() != chosen.numel():
            raise ValueError("distinct holds an index twice")
        part = random_split(chosen.numel(), n_train, n_val=n_val, seed=seed, n_test=n_test)
        return SplitIndices(chosen[part.train], chosen[part.val], chosen[part.test])
    n_train = _check_count("n_train", n_train)
    n_val = _check_count("n_val", n_val)
    if n_train + n_val > num_examples:
        raise ValueError(
            f"cannot take n_train={n_train} plus n_val={n_val} examples from a data set of {num_examples} examples"
        )
    rest = num_examples - n_train - n_val
    if n_test is None:
        n_test = rest
    else:
        n_test = _check_count("n_test", n_test)
        if n_test > rest:
            raise ValueError(
                f"cannot take n_test={n_test} after n_train={n_train} and n_val={n_val} from "
                f"{num_examples} examples (only {rest} remain)"
            )
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(num_examples, generator=generator)
    return SplitIndices(
        train=perm[:n_train].clone(),
        val=perm[n_train : n_train + n_val].clone(),
        test=perm[n_train + n_val : n_train + n_val + n_test].clone(),
    )
