"""The one place where training and evaluation call the model on a batch."""

from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor, nn

from pyg_schnet.batching.dense import to_dense, to_sparse

#: Batching schemes :func:`predict` accepts. ``'sparse'`` is PyG's: the atoms of all molecules in one
#: list with a ``batch`` vector. ``'dense'`` pads the molecules to ``[B, N_max]``
#: (:func:`pyg_schnet.batching.to_dense`) and runs the model's dense path on the same parameters.
BATCHING_MODES: Tuple[str, ...] = ("sparse", "dense")
#: What a training configuration may ask for: a mode, or ``'auto'``, which the trainer resolves to the
#: faster mode for the data by a short measurement at start-up (:func:`pyg_schnet.batching.choose_batching`).
BATCHING_CHOICES: Tuple[str, ...] = BATCHING_MODES + ("auto",)


def check_batching(batching: str, allow_auto: bool = False) -> str:
    """Returns ``batching`` or raises :class:`ValueError` naming the accepted values."""
    accepted = BATCHING_CHOICES if allow_auto else BATCHING_MODES
    if batching not in accepted:
        raise ValueError(f"batching must be one of {accepted}, got {batching!r}")
    return batching


def predict(model: nn.Module, batch, with_forces: bool, batching: str = "sparse") -> Tuple[Tensor, Optional[Tensor]]:
    """Energies (and forces) of a PyG mini-batch.

    Args:
        model: a :class:`pyg_schnet.SchNet` (or anything with its call signature).
        batch: a PyG ``Batch`` with ``z`` ``[N]``, ``pos`` ``[N, 3]`` (Angstrom) and ``batch`` ``[N]``;
            periodic structures also ``cell`` ``[G, 3, 3]`` and ``pbc`` ``[G, 3]`` (sparse mode only).
        with_forces: also return ``F = -dE/dpos``; in training mode the graph is kept so a force loss
            can be back-propagated.
        batching: ``'sparse'`` or ``'dense'`` (see :data:`BATCHING_MODES`); both give the same numbers.

    Returns:
        ``(energy [G], forces [N, 3] or None)`` in the model's units; forces in the order of
        ``batch.pos`` for either mode.
    """
    check_batching(batching)
    if batching == "dense":
        dense = to_dense(batch)
        if with_forces:
            energy, forces = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
            return energy, to_sparse(forces, dense.mask)
        return model.forward_dense(dense.z, dense.pos, dense.mask), None
    # periodic structures carry cell [G, 3, 3] and pbc [G, 3]; molecules need neither
    periodic = {"cell": batch.cell, "pbc": batch.pbc} if getattr(batch, "pbc", None) is not None else {}
    if with_forces:
        return model.energy_and_forces(batch.z, batch.pos, batch.batch, **periodic)
    return model(batch.z, batch.pos, batch.batch, **periodic), None
