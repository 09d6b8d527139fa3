r"""An exported SchNet: energy and forces of one molecule as a file that plain PyTorch runs.

:func:`export_model` turns a trained :class:`~pyg_schnet.SchNet` (or its ``model.pt``) into one
file that loads with ``torch`` alone: no ``pyg_schnet``, ``torch_geometric``, ``torch_scatter`` or
``torch_cluster`` is needed to run it. Two formats of the same computation:

- ``"pt2"`` (default): a :func:`torch.export.export` program with a dynamic number of atoms,
  written by :func:`torch.export.save`; load it with ``torch.export.load(path).module()``.
- ``"torchscript"``: :func:`torch.jit.script` of the same module, written by
  :func:`torch.jit.save`; load it with ``torch.jit.load(path)``.

Either way the loaded object is called as

.. code-block:: text

    energy, forces = potential(z, pos)
    z       [N]    int64   atomic numbers (1 .. max_z - 1)
    pos     [N, 3] float   positions in Angstrom, in the artefact's dtype (metadata "dtype")
    energy  []     float   total energy, in the model's energy unit (metadata "units")
    forces  [N, 3] float   -dE/dpos, energy unit per Angstrom

for any ``N >= 1`` (one file for every molecule size). The metadata (:data:`METADATA_FILE`, JSON,
read by :func:`load_exported` or by hand, see the docs) records the format tag
:data:`EXPORT_FORMAT`, the units, the cutoff, the elements of the training set, ``max_z``, the dtype
and the versions of ``pyg_schnet`` and ``torch`` that wrote it.

**What is computed.** :class:`SchNetPotential` re-implements the paper's SchNet from its named
weights (:meth:`SchNet.export_weights`) for one non-periodic structure, with the hand-written
backward pass of :mod:`pyg_schnet.models.md_evaluator` (no autograd in the artefact; see that
module's docstring for the derivation). The pairs :math:`p = (i, j)`, :math:`i < j`, are all pairs of
the molecule; with a cutoff :math:`r_c` only those with :math:`d_p < r_c` are kept (the others carry
an exactly zero filter in the model). Per pair, with :math:`\mathbf{u}_p = (\mathbf{r}_j -
\mathbf{r}_i)/d_p`:

.. math::
    \mathbf{w}_{lp} = \mathrm{ssp}(W_{2l}\,\mathrm{ssp}(W_{1l}\,\mathbf{e}(d_p) + \mathbf{b}_{1l})
    + \mathbf{b}_{2l})\, f_c(d_p), \qquad
    \mathbf{F}_i = \sum_{p = (i, j)} \frac{\partial E}{\partial d_p} \mathbf{u}_p
    - \sum_{p = (j, i)} \frac{\partial E}{\partial d_p} \mathbf{u}_p

(no outer :math:`\mathrm{ssp}` for ``filter_activation=False``: a linear second filter layer) with
every Gaussian :math:`e_k` (no window: the model's window drops only values below float32's smallest
normal number, which the underflow mask here sets to zero as well). Equal to
:meth:`SchNet.energy_and_forces` to rounding (tests: 1e-10 in float64).

Not covered: periodic structures (cell, pbc), batches of several molecules, stress, and the
``max_num_neighbors`` guard of the model's configuration (a limit that only raises; the artefact has
none). The pair search is all pairs, :math:`O(N^2)` memory in distances.

**Why analytic forces.** ``torch.export`` of a function that calls :func:`torch.autograd.grad`
fails in torch 2.13 (non-strict: "fake tensor in the exported program constant's list"; strict with
``torch._dynamo.config.trace_autograd_ops = True``: the backward's seed is baked in as a constant of
the example's size, so any other number of atoms fails). Exporting the energy alone works, but then
every user must differentiate the loaded program themselves. The hand-written backward pass is a
plain forward graph: it exports with a dynamic number of atoms and scripts as well.

**Checks inside the artefact.** ``z`` in ``1 .. max_z - 1``, positions finite and within
:data:`~pyg_schnet.validation.MAX_ABS_POSITION`, no two atoms at the same position: each a
``RuntimeError`` with a message saying so (TorchScript raises its own ``torch.jit.Error``, not a
``RuntimeError``, with the same message). The ``pt2`` program also refuses ``pos`` of another dtype
(``RuntimeError``: "Tensor dtype mismatch") or shape (``AssertionError``: "Guard failed:
pos.size()[0] == z.size()[0]"), TorchScript with a ``ValueError`` of ours inside its error.

**Why pt2 by default.** Both formats compute the same numbers. TorchScript loads faster and its calls
cost less on small molecules (``benchmarks/export.py``), but torch 2.13 marks ``torch.jit.script``,
``torch.jit.save`` and ``torch.jit.load`` deprecated in favour of ``torch.export``; TorchScript stays
for what still needs it (libtorch-based engines, metatomic; see docs/simulation.md).
"""

import copy
import io
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_schnet.io.files import atomic_write_bytes
from pyg_schnet.io.model_file import load_model
from pyg_schnet.io.units import resolve_units
from pyg_schnet.models.md_evaluator import supports
from pyg_schnet.models.schnet import SchNet
from pyg_schnet.models.weights import SchNetWeights
from pyg_schnet.validation import MAX_ABS_POSITION

PathLike = Union[str, "os.PathLike[str]"]

#: Format tag of an exported artefact's metadata (field ``"format"``).
EXPORT_FORMAT = "pyg_schnet.export/1"
#: Name of the JSON metadata inside the artefact (an extra file of ``torch.export.save`` /
#: ``torch.jit.save``).
METADATA_FILE = "pyg_schnet_metadata.json"
#: The artefact formats :func:`export_model` writes.
EXPORT_KINDS = ("pt2", "torchscript")
#: Largest number of atoms the ``pt2`` program accepts (the upper bound of its dynamic dimension).
MAX_EXPORT_ATOMS = 100_000

#: The fields of :class:`~pyg_schnet.models.config.SchNetConfig` whose meaning :class:`SchNetPotential`
#: computes, with the value it needs (``None``: any value); a model with any other field, or another
#: value, is refused (a new option is never silently ignored). ``max_num_neighbors`` is a guard that
#: only raises, which the artefact does not have (module docstring); ``extra_heads`` are further outputs
#: on the representation, which do not change the energy and are not exported.
EXPRESSED_CONFIG: Dict[str, Any] = {
    "hidden_channels": None,
    "num_filters": None,
    "num_interactions": None,
    "num_gaussians": None,
    "rbf_start": None,
    "rbf_stop": None,
    "gamma": None,
    "cutoff": None,
    "max_z": None,
    "output_hidden": None,
    "max_num_neighbors": None,
    "filter_activation": None,
    "rbf_linspace_dtype": None,
    "head_activation": "shifted_softplus",
    "output": "extensive",
    "extra_heads": None,
}


def _unexpressed(config: Dict[str, Any]) -> Optional[str]:
    """Why :class:`SchNetPotential` does not compute what ``config`` describes (``None``: it does)."""
    unknown = sorted(set(config) - set(EXPRESSED_CONFIG))
    if unknown:
        return f"its configuration has fields the exporter does not compute: {unknown}"
    for name, needed in EXPRESSED_CONFIG.items():
        if needed is not None and name in config and config[name] != needed:
            return (
                f"its configuration has {name}={config[name]!r}; the exported energy-and-forces function needs "
                f"{name}={needed!r} (a total energy, the sum of atom contributions)"
            )
    return None


_LN2 = math.log(2.0)
_SOFTPLUS_THRESHOLD = 40.0  # as pyg_schnet.nn.activations.SOFTPLUS_THRESHOLD


class SchNetPotential(nn.Module):
    r"""Energy and analytic forces of one molecule from a SchNet's weights, in plain PyTorch.

    Holds the weights as buffers (in ``dtype``) and computes what the module docstring says; written
    so that :func:`torch.export.export` (dynamic ``N``) and :func:`torch.jit.script` both take it.
    Build it with :meth:`from_model`.

    Call: ``potential(z [N] int64, pos [N, 3] Angstrom) -> (energy [], forces [N, 3])``, energy in the
    model's unit, forces in energy unit per Angstrom.
    """

    # no ``from __future__ import annotations`` in this module: TorchScript reads these annotations
    embedding: Tensor
    atomref: Tensor
    centers: Tensor
    w1t: Tensor
    b1: Tensor
    w2t: Tensor
    b2: Tensor
    w_in: Tensor
    b_in: Tensor
    w_f: Tensor
    b_f: Tensor
    w_o: Tensor
    b_o: Tensor
    head_w: Tensor
    head_b: Tensor
    head_v: Tensor
    head_c: Tensor

    def __init__(self, weights: SchNetWeights, max_z: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        blocks = weights.blocks
        if len({int(b.filter_first.weight.size(0)) for b in blocks}) > 1:
            raise ValueError("SchNetPotential: the interaction blocks have different numbers of filters")
        self.has_cutoff = weights.cutoff is not None
        self.filter_activation = bool(weights.filter_activation)
        self.cutoff = float(weights.cutoff) if weights.cutoff is not None else math.inf
        self.gamma = float(weights.gamma)
        self.log_tiny = math.log(torch.finfo(dtype).tiny)
        self.max_z = int(max_z)
        self.num_blocks = len(blocks)
        self.num_filters = int(blocks[0].filter_first.weight.size(0)) if blocks else 0
        self.mean = float(weights.mean)
        self.std = float(weights.std)
        self.max_abs_position = float(MAX_ABS_POSITION)
        self.ln2 = _LN2
        self.dtype_message = (
            f"pyg_schnet export: pos must be a {str(dtype).replace('torch.', '')} tensor (this artefact's dtype)"
        )
        self.threshold = _SOFTPLUS_THRESHOLD
        self.z_message = f"pyg_schnet export: z holds an atomic number outside 1..{max_z - 1} (the model's embedding)"
        self.pos_message = (
            f"pyg_schnet export: pos holds a non-finite position or one beyond {MAX_ABS_POSITION:g} Angstrom"
        )
        F_ = int(weights.embedding.size(1))

        def buf(name: str, t: Tensor) -> None:
            self.register_buffer(name, t.detach().to(dtype).contiguous())

        def stack(ts: List[Tensor], shape: Tuple[int, ...]) -> Tensor:
            return torch.stack(ts) if ts else torch.zeros(shape, dtype=dtype)

        Ff = self.num_filters
        buf("embedding", weights.embedding)
        buf("atomref", weights.atomref)
        buf("centers", weights.centers)
        K = int(weights.centers.numel())
        # filter networks, all blocks stacked: first layers [K, L*Ff], second [L, Ff(in), Ff(out)]
        w1 = [b.filter_first.weight for b in blocks]
        buf("w1t", torch.cat(w1, 0).t() if w1 else torch.zeros(K, 0))
        buf("b1", torch.cat([b.filter_first.bias for b in blocks], 0) if blocks else torch.zeros(0))
        buf("w2t", stack([b.filter_second.weight.t() for b in blocks], (0, Ff, Ff)))
        buf("b2", stack([b.filter_second.bias.unsqueeze(0) for b in blocks], (0, 1, Ff)))
        # dense layers of the blocks, PyTorch's layout [out, in]
        buf("w_in", stack([b.in2filter.weight for b in blocks], (0, Ff, F_)))
        buf("b_in", stack([b.in2filter.bias for b in blocks], (0, Ff)))
        buf("w_f", stack([b.filter2out.weight for b in blocks], (0, F_, Ff)))
        buf("b_f", stack([b.filter2out.bias for b in blocks], (0, F_)))
        buf("w_o", stack([b.out.weight for b in blocks], (0, F_, F_)))
        buf("b_o", stack([b.out.bias for b in blocks], (0, F_)))
        buf("head_w", weights.head_hidden.weight)  # [H, F]
        buf("head_b", weights.head_hidden.bias)
        buf("head_v", weights.head_out.weight.reshape(-1))  # [H]
        buf("head_c", weights.head_out.bias.reshape(-1))  # [1]

    @classmethod
    def from_model(cls, model: SchNet, dtype: torch.dtype = torch.float64) -> "SchNetPotential":
        """The potential of ``model`` (a :class:`~pyg_schnet.SchNet` with the paper's modules, see
        :func:`pyg_schnet.models.md_evaluator.supports`; else :class:`ValueError` with the reason)."""
        if not isinstance(model, SchNet):
            raise TypeError(f"export: expected a pyg_schnet SchNet, got {type(model).__name__}")
        reason = _unexpressed(model.config) or supports(model)
        if reason is not None:
            raise ValueError(f"export: this model cannot be exported: {reason}")
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"export: dtype must be torch.float64 or torch.float32, got {dtype}")
        return cls(model.export_weights(), model.max_z, dtype).eval()

    def _filters(self, d: Tensor) -> Tuple[Tensor, Tensor]:
        """Filters ``w`` ``[L, P, Ff]`` of all blocks and their derivatives in ``d`` (forward mode)."""
        t = d.unsqueeze(-1) - self.centers  # [P, K]
        exponent = (-self.gamma) * t * t
        e = torch.exp(exponent.masked_fill(exponent < self.log_tiny, -math.inf))
        de = e * t * (-2.0 * self.gamma)
        h1 = torch.addmm(self.b1, e, self.w1t)  # [P, L*Ff]
        dh1 = torch.mm(de, self.w1t) * torch.sigmoid(h1)
        P = d.size(0)
        a1 = (F.softplus(h1, 1.0, self.threshold) - self.ln2).view(P, self.num_blocks, self.num_filters)
        h2 = torch.baddbmm(self.b2, a1.transpose(0, 1), self.w2t)  # [L, P, Ff]
        dh2 = torch.bmm(dh1.view(P, self.num_blocks, self.num_filters).transpose(0, 1), self.w2t)
        if self.filter_activation:
            w = F.softplus(h2, 1.0, self.threshold) - self.ln2
            dw = dh2 * torch.sigmoid(h2)
        else:  # a linear second layer (SchNetConfig.filter_activation=False)
            w, dw = h2, dh2
        if self.has_cutoff:
            scale = math.pi / self.cutoff
            fc = (0.5 * (torch.cos(d * scale) + 1.0)).unsqueeze(-1)  # d < cutoff for every kept pair
            dfc = ((-0.5 * scale) * torch.sin(d * scale)).unsqueeze(-1)
            dw = dw * fc + w * dfc
            w = w * fc
        return w, dw

    def _check_inputs(self, z: Tensor, pos: Tensor) -> None:
        """Shapes and dtypes (known while a program is traced, so the pt2 program keeps them as its
        own input guards)."""
        if z.dim() != 1 or (z.dtype != torch.long and z.dtype != torch.int):
            raise ValueError("pyg_schnet export: z must be a 1-D int64 tensor of atomic numbers [N]")
        if pos.dim() != 2 or pos.size(1) != 3 or pos.size(0) != z.size(0):
            raise ValueError("pyg_schnet export: pos must have shape [N, 3] (Angstrom), N = len(z)")
        if pos.dtype != self.embedding.dtype:
            raise ValueError(self.dtype_message)

    def _require(self, condition: Tensor, message: str) -> None:
        """Raise ``RuntimeError(message)`` unless ``condition`` (a bool tensor) holds: read at once in
        eager and TorchScript, an assertion op (``aten._assert_async``) in the pt2 program, whose
        graph cannot branch on data."""
        if torch.jit.is_scripting():
            if not bool(condition):
                raise RuntimeError(message)
        else:
            torch._assert_async(condition, message)

    def forward(self, z: Tensor, pos: Tensor) -> Tuple[Tensor, Tensor]:
        """Energy ``[]`` (model unit) and forces ``[N, 3]`` (unit per Angstrom) of one molecule."""
        self._check_inputs(z, pos)
        pos = pos.to(self.embedding.dtype)  # a no-op; in the pt2 program an assertion of the dtype
        self._require(((z >= 1) & (z < self.max_z)).all(), self.z_message)
        self._require((pos.abs() <= self.max_abs_position).all(), self.pos_message)
        n = pos.size(0)
        idx = torch.arange(n, device=pos.device)
        first = idx.unsqueeze(1).expand(n, n)
        second = idx.unsqueeze(0).expand(n, n)
        upper = first < second
        i, j = first[upper], second[upper]  # all pairs i < j
        vec = pos.index_select(0, j) - pos.index_select(0, i)  # r_j - r_i [P, 3]
        d = torch.linalg.vector_norm(vec, dim=1)
        self._require((d > 0).all(), "pyg_schnet export: two atoms are at the same position (distance 0)")
        if self.has_cutoff:
            keep = d < self.cutoff
            i, j, vec, d = i[keep], j[keep], vec[keep], d[keep]
        x = self.embedding.index_select(0, z)  # [N, F]
        energy_const = self.atomref.index_select(0, z).sum() + n * (
            self.mean + self.std * (self.head_c.sum() - self.ln2 * self.head_v.sum())
        )
        if self.num_blocks == 0:  # the embedding alone: no distance enters the energy
            g = torch.addmm(self.head_b, x, self.head_w.t())
            energy = self.std * torch.mv(F.softplus(g, 1.0, self.threshold), self.head_v).sum() + energy_const
            return energy, torch.zeros_like(pos)
        w, dw = self._filters(d)
        ys: List[Tensor] = []
        ts: List[Tensor] = []
        for l in range(self.num_blocks):
            y = torch.addmm(self.b_in[l], x, self.w_in[l].t())  # [N, Ff]
            wl = w[l]
            c = (
                torch.zeros_like(y)
                .index_add(0, i, wl * y.index_select(0, j))
                .index_add(0, j, wl * y.index_select(0, i))
            )
            t = torch.addmm(self.b_f[l], c, self.w_f[l].t())  # [N, F]
            x = x + torch.addmm(self.b_o[l], F.softplus(t, 1.0, self.threshold) - self.ln2, self.w_o[l].t())
            ys.append(y)
            ts.append(t)
        g = torch.addmm(self.head_b, x, self.head_w.t())  # [N, H]
        energy = self.std * torch.mv(F.softplus(g, 1.0, self.threshold), self.head_v).sum() + energy_const
        # backward: dE/dx, then per block (last first) dE/dy and dE/dw, accumulated into dE/dd
        gx = torch.mm(torch.sigmoid(g) * (self.std * self.head_v), self.head_w)  # [N, F]
        gd = torch.zeros_like(d)
        for k in range(self.num_blocks):
            l = self.num_blocks - 1 - k
            y, t, wl = ys[l], ts[l], w[l]
            gc = torch.mm(torch.mm(gx, self.w_o[l]) * torch.sigmoid(t), self.w_f[l])  # [N, Ff]
            gc_i, gc_j = gc.index_select(0, i), gc.index_select(0, j)
            gd = gd + ((gc_i * y.index_select(0, j) + gc_j * y.index_select(0, i)) * dw[l]).sum(1)
            gy = torch.zeros_like(y).index_add(0, j, wl * gc_i).index_add(0, i, wl * gc_j)
            gx = gx + torch.mm(gy, self.w_in[l])
        gvec = vec * (gd / d).unsqueeze(1)  # dE/d(r_j - r_i) per pair
        forces = torch.zeros_like(pos).index_add(0, i, gvec).index_add(0, j, gvec, alpha=-1.0)
        return energy, forces


# ---------------------------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote: ``path``, the ``metadata`` stored in it, the seconds the
    export (tracing or scripting) and the serialisation took, and the relative difference from the
    model that the verification measured (``None``: not verified)."""

    path: Path
    metadata: Dict[str, Any]
    export_s: float
    verified: Optional[float] = None


def _metadata(model: SchNet, units: Dict[str, str], kind: str, dtype: torch.dtype) -> Dict[str, Any]:
    from pyg_schnet import __version__

    domain = getattr(model, "training_domain", None)
    cutoff = model.representation.cutoff
    return {
        "format": EXPORT_FORMAT,
        "kind": kind,
        "units": {"energy": units["energy"], "length": units["length"], "forces": f"{units['energy']}/Angstrom"},
        "cutoff": None if cutoff is None else float(cutoff),
        "periodic": False,
        "elements": None if domain is None else [int(z) for z in domain.elements],
        "max_z": int(model.max_z),
        "dtype": str(dtype).replace("torch.", ""),
        "inputs": {"z": "[N] int64 atomic numbers", "pos": "[N, 3] positions (Angstrom), dtype as 'dtype'"},
        "outputs": {"energy": "[] total energy (units.energy)", "forces": "[N, 3] -dE/dpos (units.forces)"},
        "config": dict(model.config),
        "pyg_schnet_version": __version__,
        "torch_version": torch.__version__,
    }


def _example(dtype: torch.dtype, n: int = 5) -> Tuple[Tensor, Tensor]:
    """A tracing example: ``n`` hydrogens on a line 1 Angstrom apart (distinct, within any cutoff)."""
    pos = torch.zeros(n, 3, dtype=dtype)
    pos[:, 0] = torch.arange(n, dtype=dtype)
    return torch.ones(n, dtype=torch.long), pos


def verification_molecule(model: SchNet, dtype: torch.dtype, n: int = 8) -> Tuple[Tensor, Tensor]:
    """A molecule on which :func:`export_model` compares the written artefact with the model: ``n``
    atoms of the training set's elements (else H, C, O), each 1.0-1.6 Angstrom from the previous one in a
    random direction (seeded), so the pairs span short and long distances (beyond a small cutoff too)."""
    domain = getattr(model, "training_domain", None)
    elements = [int(e) for e in domain.elements] if domain is not None and domain.elements else [1, 6, 8]
    elements = [e for e in elements if 1 <= e < model.max_z] or [1]
    gen = torch.Generator().manual_seed(0)
    steps = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    steps = steps / torch.linalg.vector_norm(steps, dim=1, keepdim=True)
    steps = steps * (1.0 + 0.6 * torch.rand(n, 1, generator=gen, dtype=torch.float64))
    z = torch.tensor([elements[k % len(elements)] for k in range(n)], dtype=torch.long)
    return z, torch.cumsum(steps, 0).to(dtype)


#: Largest relative difference between the written artefact and the model (its weights in float64) on the
#: verification molecule (float64 artefacts; float32 ones are compared at 1e-4), beyond which
#: :func:`export_model` writes nothing.
VERIFY_TOLERANCE = 1e-8


def export_program(potential: SchNetPotential) -> "torch.export.ExportedProgram":
    """:func:`torch.export.export` of ``potential`` with ``N`` dynamic in ``1 .. MAX_EXPORT_ATOMS``."""
    z, pos = _example(potential.embedding.dtype)
    atoms = torch.export.Dim("num_atoms", min=1, max=MAX_EXPORT_ATOMS)
    return torch.export.export(potential, (z, pos), dynamic_shapes={"z": {0: atoms}, "pos": {0: atoms}}, strict=False)


def _verify(payload: bytes, kind: str, model: SchNet, dtype: torch.dtype, out_path: PathLike) -> float:
    """Load the serialised artefact back and compare it with ``model`` on :func:`verification_molecule`;
    return the largest relative difference (energy or forces), :class:`RuntimeError` above the tolerance."""
    buffer = io.BytesIO(payload)
    loaded = torch.export.load(buffer).module() if kind == "pt2" else torch.jit.load(buffer, map_location="cpu")
    z, pos = verification_molecule(model, dtype)
    energy, forces = loaded(z, pos)
    reference = copy.deepcopy(model).to("cpu", torch.float64).eval()  # the model's weights, in float64
    ref_energy, ref_forces = reference.energy_and_forces(z, pos.double())
    scale = max(float(ref_forces.abs().max()), abs(float(ref_energy[0])) / len(z), 1e-12)
    diff = max(abs(float(energy) - float(ref_energy[0])) / len(z), float((forces.double() - ref_forces).abs().max()))
    tolerance = VERIFY_TOLERANCE if dtype == torch.float64 else 1e-4
    if not diff <= tolerance * scale:  # NaN fails too
        raise RuntimeError(
            f"export to {os.fspath(out_path)}: the artefact differs from the model on a test molecule by "
            f"{diff:.3g} (relative {diff / scale:.3g}, tolerance {tolerance:g}); nothing was written"
        )
    return diff / scale


def export_model(
    model_or_path: Union[SchNet, PathLike],
    out_path: PathLike,
    *,
    kind: str = "pt2",
    dtype: torch.dtype = torch.float64,
    energy_unit: Optional[str] = None,
    verify: bool = True,
) -> ExportResult:
    """Write ``model_or_path`` (a :class:`~pyg_schnet.SchNet` or a ``model.pt``) as an artefact that
    runs with plain PyTorch (see the module docstring for the call), atomically to ``out_path``.

    Args:
        model_or_path: the model, or the path of a ``model.pt`` (:func:`pyg_schnet.load_model`).
        out_path: the file to write (conventionally ``.pt2`` for ``kind="pt2"``, ``.pt`` for
            TorchScript).
        kind: ``"pt2"`` (:func:`torch.export.save`) or ``"torchscript"`` (:func:`torch.jit.save`).
        dtype: the artefact's weights and computation, ``torch.float64`` (default, as the ASE
            calculator) or ``torch.float32``; it takes positions of that dtype.
        energy_unit: the energy unit of a model that records none (a ``model.pt`` of format /1); never
            overrides a recorded one (:func:`pyg_schnet.io.units.resolve_units`).
        verify: load the serialised artefact back and compare it with the model on a test molecule
            (:func:`verification_molecule`) before anything is written: above :data:`VERIFY_TOLERANCE`
            a :class:`RuntimeError` and no file.

    Raises:
        ValueError: an unknown ``kind``, a model whose modules the exporter cannot express
            (replaced or subclassed, forward hooks, a configuration field it does not compute: the
            reason is named), a model without units.
    """
    if kind not in EXPORT_KINDS:
        raise ValueError(f"export: kind must be one of {EXPORT_KINDS}, got {kind!r}")
    if isinstance(model_or_path, SchNet):
        model = model_or_path
    elif isinstance(model_or_path, (str, os.PathLike)):
        model = load_model(model_or_path)
    else:
        raise TypeError(
            f"export: expected a pyg_schnet SchNet or the path of a model.pt, got {type(model_or_path).__name__}"
        )
    units = resolve_units(model, energy_unit, option="energy_unit")
    potential = SchNetPotential.from_model(model, dtype).cpu()
    metadata = _metadata(model, units, kind, dtype)
    extra = {METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True)}
    buffer = io.BytesIO()
    start = time.perf_counter()
    if kind == "pt2":
        torch.export.save(export_program(potential), buffer, extra_files=extra)
    else:
        torch.jit.save(torch.jit.script(potential), buffer, _extra_files=extra)
    export_s = time.perf_counter() - start
    payload = buffer.getvalue()
    verified = _verify(payload, kind, model, dtype, out_path) if verify else None
    path = atomic_write_bytes(out_path, payload)
    return ExportResult(path, metadata, export_s, verified)


# ------------------------------------------------------------------------------------------ load
def read_metadata(path: PathLike) -> Dict[str, Any]:
    """The metadata of an artefact written by :func:`export_model` (JSON inside its zip archive),
    read without loading the program; :class:`ValueError` naming the file when it holds none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == METADATA_FILE]
            if not names:
                raise ValueError(
                    f"{path}: holds no {METADATA_FILE}; is it an artefact written by pyg_schnet's export_model?"
                )
            metadata = json.loads(archive.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not an exported model (not a zip archive: {exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != EXPORT_FORMAT:
        got = metadata.get("format") if isinstance(metadata, dict) else metadata
        raise ValueError(f"{path}: metadata 'format' is {got!r}, expected {EXPORT_FORMAT!r}")
    return metadata


def load_exported(path: PathLike) -> Tuple[Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]], Dict[str, Any]]:
    """``(potential, metadata)`` of an artefact of :func:`export_model`; needs only ``torch``.

    ``potential(z [N] int64, pos [N, 3] Angstrom) -> (energy [], forces [N, 3])`` in
    ``metadata["units"]``; ``pos`` must have ``metadata["dtype"]``. Without ``pyg_schnet`` the same
    is ``torch.export.load(path).module()`` (``"pt2"``) or ``torch.jit.load(path)``
    (``"torchscript"``).
    """
    metadata = read_metadata(path)
    if metadata.get("kind") == "pt2":
        return torch.export.load(os.fspath(path)).module(), metadata
    if metadata.get("kind") == "torchscript":
        return torch.jit.load(os.fspath(path), map_location="cpu"), metadata
    raise ValueError(f"{path}: metadata 'kind' is {metadata.get('kind')!r}, expected one of {EXPORT_KINDS}")
