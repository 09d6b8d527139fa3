"""The one place where training and evaluation call the model on a batch."""

from __future__ import annotations

import functools
import inspect
from typing import Dict, Mapping, Optional, Tuple

from torch import Tensor, nn

from pyg_schnet.batching.dense import dense_slots, to_dense, to_sparse
from pyg_schnet.graph.pairs import HostLayout

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


@functools.lru_cache(maxsize=None)
def _takes_keyword(method, name: str) -> bool:
    """Whether the function ``method`` accepts the keyword argument ``name``."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def predict(
    model: nn.Module, batch, with_forces: bool, batching: str = "sparse", layout: Optional[HostLayout] = None
) -> Tuple[Tensor, Optional[Tensor]]:
    """Energies (and forces) of a PyG mini-batch.

    Args:
        model: a :class:`pyg_schnet.SchNet` (or anything with its call signature).
        batch: a PyG ``Batch`` with ``z`` ``[N]``, ``pos`` ``[N, 3]`` (Angstrom) and ``batch`` ``[N]``;
            periodic structures also ``cell`` ``[G, 3, 3]`` and ``pbc`` ``[G, 3]`` (sparse mode only).
        with_forces: also return ``F = -dE/dpos``; in training mode the graph is kept so a force loss
            can be back-propagated.
        batching: ``'sparse'`` or ``'dense'`` (see :data:`BATCHING_MODES`); both give the same numbers.
        layout: the batch's sizes and distance range known on the host
            (:class:`~pyg_schnet.graph.pairs.HostLayout`; default :meth:`HostLayout.of_batch` of
            ``batch``, whose distance range needs ``batch.pos`` still on the CPU: make it before
            ``batch.to(device)``). With a layout, and inside :func:`pyg_schnet.validation.trusted_inputs`,
            a training step reads nothing from the device (``tests/test_host_syncs.py``).

    Returns:
        ``(energy [G], forces [N, 3] or None)`` in the model's units; forces in the order of
        ``batch.pos`` for either mode.
    """
    check_batching(batching)
    if layout is None:
        layout = HostLayout.of_batch(batch)
    charge = getattr(batch, "charge", None)
    if batching == "dense":
        if charge is not None and _has_dipole_output(model):
            raise ValueError(
                "batching='dense' computes the dipole of neutral molecules only, but the batch carries "
                "'charge': use batching='sparse'"
            )
        dense = to_dense(batch, layout=layout)
        method = model.energy_and_forces_dense if with_forces else model.forward_dense
        extra = {}
        if layout is not None and _takes_keyword(getattr(type(model), method.__name__), "distance_range"):
            extra["distance_range"] = layout.window_range(None)
        if with_forces:
            energy, forces = method(dense.z, dense.pos, dense.mask, **extra)
            index = None if layout is None else dense_slots(layout).to(forces.device, non_blocking=True)
            return energy, to_sparse(forces, dense.mask, index)
        return method(dense.z, dense.pos, dense.mask, **extra), None
    # periodic structures carry cell [G, 3, 3] and pbc [G, 3]; molecules need neither
    kwargs = {"cell": batch.cell, "pbc": batch.pbc} if getattr(batch, "pbc", None) is not None else {}
    method = type(model).energy_and_forces if with_forces else type(model).forward
    if layout is not None and _takes_keyword(method, "layout") and _takes_keyword(type(model).forward, "layout"):
        kwargs["layout"] = layout
    if charge is not None and _has_dipole_output(model):  # the primary output is a dipole moment
        outputs = model.predict(batch.z, batch.pos, batch.batch, charge=charge, forces=with_forces, **kwargs)
        return outputs["energy"], outputs.get("forces")
    if with_forces:
        return model.energy_and_forces(batch.z, batch.pos, batch.batch, **kwargs)
    return model(batch.z, batch.pos, batch.batch, **kwargs), None


def _has_dipole_output(model: nn.Module) -> bool:
    return getattr(getattr(model, "settings", None), "output", None) == "dipole_moment"


def predict_outputs(
    model: nn.Module,
    batch,
    with_forces: bool,
    batching: str = "sparse",
    layout: Optional[HostLayout] = None,
    heads: Optional[Mapping[str, str]] = None,
) -> Tuple[Tensor, Optional[Tensor], Dict[str, Tensor]]:
    """:func:`predict` and the extra heads ``heads`` (names -> kinds) of the model in the same pass:
    ``(energy [G], forces [N, 3] or None, {name: [G] or [G, 3]})``.

    Without ``heads`` this is :func:`predict` (and an empty dict). With them the model's
    :meth:`~pyg_schnet.SchNet.predict` runs on the sparse batch (with ``batch.charge``, the structures'
    total charges, when the batch has it); the dense path computes the primary output only, so
    ``batching='dense'`` is refused with a :class:`ValueError`.
    """
    if not heads:
        energy, forces = predict(model, batch, with_forces, batching, layout)
        return energy, forces, {}
    check_batching(batching)
    if batching != "sparse":
        raise ValueError(
            f"extra heads ({', '.join(heads)}) are computed on sparse batches only; use batching='sparse' "
            "(the dense path computes the primary output alone)"
        )
    if layout is None:
        layout = HostLayout.of_batch(batch)
    kwargs = {"cell": batch.cell, "pbc": batch.pbc} if getattr(batch, "pbc", None) is not None else {}
    if layout is not None and _takes_keyword(type(model).predict, "layout"):
        kwargs["layout"] = layout
    charge = getattr(batch, "charge", None)
    outputs = model.predict(batch.z, batch.pos, batch.batch, charge=charge, forces=with_forces, **kwargs)
    return outputs["energy"], outputs.get("forces"), {name: outputs[name] for name in heads}


def predict_with_stress(model: nn.Module, batch) -> Tuple[Tensor, Tensor, Tensor]:
    """Energies ``[G]``, forces ``[N, 3]`` and stress ``[G, 3, 3]`` (energy unit / Angstrom^3, ASE's sign)
    of a sparse PyG mini-batch of periodic structures (:meth:`pyg_schnet.SchNet.energy_forces_stress`;
    in training mode the graph is kept for a stress loss).

    Raises:
        ValueError: the batch carries no ``cell`` / ``pbc``, or the model's primary output is no energy.
    """
    output = getattr(getattr(model, "settings", None), "output", "extensive")
    if output != "extensive":
        raise ValueError(
            f"a stress is the strain derivative of an extensive energy, but this model's primary output is "
            f"{output!r}: train the stress with SchNetConfig(output='extensive')"
        )
    if getattr(batch, "pbc", None) is None or getattr(batch, "cell", None) is None:
        raise ValueError("a stress needs periodic structures: the batch carries no 'cell' and 'pbc'")
    return model.energy_forces_stress(batch.z, batch.pos, batch.batch, batch.cell, batch.pbc)
