r"""Compiled and graph-captured inference: ``torch.compile`` for the MD call and for the model's
autograd path, and CUDA-graph replay of the MD call of one fixed molecule.

Three wrappers, each a callable with the signature of what it wraps and the same numbers
(float64: equal to eager to 1e-10, ``tests/models/test_compiled.py``):

- :func:`compile_evaluator`: an :class:`~pyg_schnet.models.md_evaluator.MDEvaluator` whose
  computation (its ``_evaluate``: filters, interactions and the hand-written backward pass) is
  compiled with :func:`torch.compile`; the per-call checks around it (the shape of ``pos``, the
  finiteness of the result, the error that names a bad atom) stay the evaluator's own.
- :func:`compile_energy_and_forces`: :meth:`SchNet.energy_and_forces` with the model's forward
  compiled; the forces are :math:`-\partial E/\partial \mathbf{r}` by autograd through the compiled
  forward (AOTAutograd compiles its backward too), the same
  :func:`~pyg_schnet.models.response.energy_and_forces` as the eager model. Periodic structures
  (``cell``/``pbc``) go the same way.
- :func:`capture_md_call` (CUDA only): the evaluator's computation captured once into a CUDA graph
  on static input and output buffers; a call copies ``pos`` into the input buffer and replays the
  graph: one launch instead of one per operation. Only a molecule whose pair list never changes
  (``cutoff=None``, or at most :data:`~pyg_schnet.models.md_evaluator.ALL_PAIRS_MAX_ATOMS` atoms)
  can be captured; the captured computation must not synchronise with the host, and it uses every
  Gaussian centre (the window of the distances, which drops centres that contribute exact zeros,
  cannot be fixed for positions not known at capture).

Modes (:data:`MODES`): ``"default"``, ``"reduce-overhead"`` (CUDA graphs inside inductor on a CUDA
device; on the CPU the same code as ``"default"``) and ``"max-autotune-no-cudagraphs"`` (searches
kernel variants: longer compiles). :data:`DEFAULT_MODE` is the one measured fastest for the MD call
on the CPU (``benchmarks/compiled_inference.py``, docs/benchmarks.md).

Shapes: ``dynamic=None`` (default) is torch's automatic dynamic shapes: the first call compiles for
its sizes, a call with other sizes (atoms, pairs, a Gaussian window of other width) recompiles once
with those sizes symbolic, and later sizes reuse that graph. :func:`compile_counts` reads dynamo's
counters so that a benchmark can count recompilations.

Where inductor cannot run (no working C++ compiler for the CPU, no Triton for CUDA, or a failing
first compilation), the wrappers run eagerly and say so once with a :class:`CompileFallbackWarning`;
a frame that dynamo fails to trace (seen: NumPy code of the periodic neighbour search) runs eagerly
from then on, the rest compiled, also said once. Errors for bad input are the eager call's.

Host synchronisations inside the compiled code (``Tensor.tolist``/``item``) split it into several
graphs (graph breaks, :func:`graph_breaks` lists them); the results stay exact.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from pyg_schnet.models.md_evaluator import ALL_PAIRS_MAX_ATOMS, MDEvaluator
from pyg_schnet.models.response import energy_and_forces
from pyg_schnet.models.schnet import SchNet

#: The modes of :func:`torch.compile` the wrappers accept.
MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
#: The mode measured fastest for the MD call on the CPU (docs/benchmarks.md, "Compiled inference").
DEFAULT_MODE = "default"


class CompileFallbackWarning(RuntimeWarning):
    """``torch.compile`` cannot run here (no C++ compiler, no Triton, a failed compilation): the
    wrapper computes eagerly, with the same results."""


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {MODES}, got {mode!r}")
    return mode


def compiler_unavailable(device: torch.device) -> Optional[str]:
    """Why inductor cannot compile for ``device`` (``None``: it can): on the CPU it needs a C++
    compiler (``$CXX`` or ``g++``, :func:`torch._inductor.cpp_builder.get_cpp_compiler`), on CUDA
    the Triton package."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (inductor's CUDA kernels need it)"
    if device.type != "cpu":
        return f"inductor is not used for {device.type} devices here"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler, or an import that fails on this build
        return f"no working C++ compiler for inductor ({type(exc).__name__}: {exc})".replace("\n", " ")
    return None


def _fallback_warning(what: str, reason: str) -> None:
    warnings.warn(
        f"pyg-schnet: {what} runs eagerly (same results, no compile speed-up): {reason}",
        CompileFallbackWarning,
        stacklevel=3,
    )


class _Compiled:
    """A compiled function with an eager twin. A first compilation that fails in the backend
    (inductor's ``BackendCompilerFailed``) switches to the eager function for good. Any other error
    of a compiled call is answered by the eager call: an error the eager call raises too (bad input)
    is raised as the eager call raises it; else dynamo failed on some frame (e.g. NumPy code it cannot
    follow), and the calls from then on run with dynamo's ``suppress_errors``, so such a frame runs
    eagerly and the rest stays compiled (and if that fails too, everything runs eagerly). Each change
    is said once with a :class:`CompileFallbackWarning`."""

    def __init__(self, eager: Callable[..., Any], what: str, device: torch.device, mode: str, dynamic: Optional[bool]):
        self.eager = eager
        self.what = what
        self.mode = _check_mode(mode)
        #: why the wrapper runs eagerly (``None``: it runs the compiled code)
        self.fallback_reason: Optional[str] = compiler_unavailable(device)
        #: why part of the call runs eagerly (``None``: dynamo traced every frame it was given)
        self.partial_reason: Optional[str] = None
        self.compiled: Optional[Callable[..., Any]] = None
        if self.fallback_reason is not None:
            _fallback_warning(what, self.fallback_reason)
        else:
            self.compiled = torch.compile(eager, mode=mode, dynamic=dynamic)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args)
        try:
            if self.partial_reason is None:
                return self.compiled(*args)
            with torch._dynamo.config.patch(suppress_errors=True):
                return self.compiled(*args)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            self.compiled = None
            inner = exc.inner_exception
            self.fallback_reason = f"the compilation failed ({type(inner).__name__}: {inner})"
            if "distutils" in str(inner):  # setuptools' check, when the standard library's distutils came first
                self.fallback_reason += (
                    "; the standard library's distutils was imported before setuptools in this process (for "
                    "example by `import pip`), and inductor's C++ builder imports setuptools"
                )
            _fallback_warning(self.what, self.fallback_reason)
            return self.eager(*args)
        except Exception as exc:
            # the eager call raises the model's own error for bad inputs; if it succeeds, the compiler failed
            result = self.eager(*args)
            first = (str(exc).strip().splitlines() or [""])[0]
            reason = f"{type(exc).__name__}: {first}"
            if self.partial_reason is None:
                self.partial_reason = f"dynamo failed on a frame ({reason}); such frames now run eagerly"
                warnings.warn(
                    f"pyg-schnet: part of {self.what} runs eagerly (same results): {self.partial_reason}",
                    CompileFallbackWarning,
                    stacklevel=2,
                )
            else:
                self.compiled = None
                self.fallback_reason = f"the compiled code failed even with dynamo's errors suppressed ({reason})"
                _fallback_warning(self.what, self.fallback_reason)
            return result


class _WithEvaluate:
    """The evaluator seen through a replaced ``_evaluate``: every other attribute is the evaluator's
    own (read and written through), so that ``MDEvaluator.__call__`` runs its checks unchanged around
    the compiled or replayed computation."""

    def __init__(self, evaluator: MDEvaluator, evaluate: Callable[..., Tuple[Tensor, Tensor]]) -> None:
        object.__setattr__(self, "_target", evaluator)
        object.__setattr__(self, "_evaluate", evaluate)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_target"), name, value)


class CompiledEvaluator:
    """:class:`MDEvaluator` with its computation compiled (:func:`compile_evaluator`).

    Call: ``(pos, cell=None, pbc=None) -> (energy [1], forces [N, 3])``, as the evaluator's.
    ``evaluator.refresh()`` after a change of weights is seen here too (the compiled code
    recompiles for the new weight tensors).
    """

    def __init__(self, evaluator: MDEvaluator, mode: str = DEFAULT_MODE, dynamic: Optional[bool] = None) -> None:
        if not isinstance(evaluator, MDEvaluator):
            raise TypeError(f"compile_evaluator needs an MDEvaluator, got {type(evaluator).__name__}")
        self.evaluator = evaluator
        self._fn = _Compiled(evaluator._evaluate, "the compiled MD call", evaluator.x0.device, mode, dynamic)
        self._view = _WithEvaluate(evaluator, self._fn)

    @property
    def mode(self) -> str:
        return self._fn.mode

    @property
    def fallback_reason(self) -> Optional[str]:
        """Why this runs eagerly (``None``: compiled)."""
        return self._fn.fallback_reason

    def __call__(
        self, pos: Tensor, cell: Optional[Tensor] = None, pbc: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        return MDEvaluator.__call__(self._view, pos, cell, pbc)  # type: ignore[arg-type]


def compile_evaluator(
    evaluator: MDEvaluator, mode: str = DEFAULT_MODE, dynamic: Optional[bool] = None
) -> CompiledEvaluator:
    """The MD call of ``evaluator`` compiled with ``torch.compile(mode=mode, dynamic=dynamic)``;
    eager with a :class:`CompileFallbackWarning` where inductor cannot run (see the module docstring).
    The first call compiles (tens of seconds on a CPU: docs/benchmarks.md)."""
    return CompiledEvaluator(evaluator, mode, dynamic)


class CompiledEnergyAndForces:
    """:meth:`SchNet.energy_and_forces` with a compiled forward (:func:`compile_energy_and_forces`).

    Call: ``(z, pos, batch=None, cell=None, pbc=None) -> (energy [G], forces [N, 3])``; training mode
    keeps the graph of the forces (``create_graph``) as the model's method does. The energy is the
    model's primary output (its compiled ``forward``, whatever ``config.output`` is, exactly as
    :meth:`SchNet.energy_and_forces`); extra heads are not computed (use ``model.predict``).
    """

    def __init__(self, model: SchNet, mode: str = DEFAULT_MODE, dynamic: Optional[bool] = None) -> None:
        if not isinstance(model, SchNet):
            raise TypeError(f"compile_energy_and_forces needs a pyg_schnet SchNet, got {type(model).__name__}")
        self.model = model
        self._forward = _Compiled(model, "the compiled model forward", model.head.std.device, mode, dynamic)

    @property
    def mode(self) -> str:
        return self._forward.mode

    @property
    def fallback_reason(self) -> Optional[str]:
        return self._forward.fallback_reason

    def __call__(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Optional[Tensor] = None,
        cell: Optional[Tensor] = None,
        pbc: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        return energy_and_forces(lambda p: self._forward(z, p, batch, cell, pbc), pos, self.model.training)


def compile_energy_and_forces(
    model: SchNet, mode: str = DEFAULT_MODE, dynamic: Optional[bool] = None
) -> CompiledEnergyAndForces:
    """``model.energy_and_forces`` with ``torch.compile(model, mode=mode, dynamic=dynamic)`` as the
    energy; eager with a :class:`CompileFallbackWarning` where inductor cannot run."""
    return CompiledEnergyAndForces(model, mode, dynamic)


class CapturedMDCall:
    """The MD call of one fixed molecule replayed from a CUDA graph (:func:`capture_md_call`).

    Call: ``(pos, cell=None, pbc=None) -> (energy [1], forces [N, 3])``, new tensors each call (copies
    of the graph's output buffers), with the evaluator's per-call checks around the replay.
    """

    def __init__(self, evaluator: MDEvaluator, pos: Tensor, warmup: int = 3) -> None:
        if not isinstance(evaluator, MDEvaluator):
            raise TypeError(f"capture_md_call needs an MDEvaluator, got {type(evaluator).__name__}")
        device = evaluator.x0.device
        if device.type != "cuda":
            raise ValueError(
                f"capture_md_call: CUDA graphs need an evaluator on a CUDA device, this one is on {device}; "
                "on the CPU use compile_evaluator"
            )
        if evaluator.cutoff is not None and evaluator.num_atoms > ALL_PAIRS_MAX_ATOMS:
            raise ValueError(
                f"capture_md_call: a molecule of {evaluator.num_atoms} atoms with a cutoff has a Verlet pair list that "
                f"is rebuilt as atoms move, which a captured graph cannot follow (fixed pair lists: cutoff=None, or "
                f"at most {ALL_PAIRS_MAX_ATOMS} atoms); use compile_evaluator"
            )
        self.evaluator = evaluator
        # every Gaussian centre: the graph is replayed for positions not known at capture, so the window
        # of the distances (an optimisation that drops centres contributing exact zeros) cannot be fixed
        self.window = (0, evaluator.weights.num_gaussians) if evaluator.mode == "exact" else None
        with torch.inference_mode():
            self.static_pos = pos.detach().to(device, evaluator.dtype).clone()
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up: lazy initialisation and caches outside the capture
                for _ in range(warmup):
                    evaluator._evaluate(self.static_pos, self.window)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self.graph):
                    self.static_energy, self.static_forces = evaluator._evaluate(self.static_pos, self.window)
            except RuntimeError as exc:
                raise RuntimeError(
                    "capture_md_call: the MD call could not be captured into a CUDA graph (a host synchronisation "
                    f"or a CPU tensor inside the call?): {exc}"
                ) from exc
        self._view = _WithEvaluate(evaluator, self._replay)

    def _replay(self, pos: Tensor, window: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        """Copy ``pos`` in, replay; ``window`` (the evaluator's, from the host) is not needed: the graph
        holds every centre."""
        self.static_pos.copy_(pos)
        self.graph.replay()
        return self.static_energy.clone(), self.static_forces.clone()

    def __call__(
        self, pos: Tensor, cell: Optional[Tensor] = None, pbc: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        return MDEvaluator.__call__(self._view, pos, cell, pbc)  # type: ignore[arg-type]


def capture_md_call(evaluator: MDEvaluator, pos: Tensor, warmup: int = 3) -> CapturedMDCall:
    """Capture ``evaluator``'s MD call at positions ``pos`` into a CUDA graph (see the module
    docstring); :class:`ValueError` on the CPU or for a pair list that can change."""
    return CapturedMDCall(evaluator, pos, warmup)


def compile_counts() -> Dict[str, int]:
    """Dynamo's totals in this process: ``frames`` (frames it compiled, recompilations included),
    ``graphs`` (distinct graphs) and ``graph_breaks``; differences between two readings count the
    compilations a stretch of calls caused."""
    from torch._dynamo.utils import counters

    return dict(
        frames=int(counters["frames"]["total"]),
        graphs=int(counters["stats"]["unique_graphs"]),
        graph_breaks=int(sum(counters["graph_break"].values())),
    )


def graph_breaks(fn: Callable[..., Any], *args: Any) -> List[str]:
    """The reasons dynamo splits ``fn(*args)`` into several graphs (:func:`torch._dynamo.explain`),
    first line of each, in order; an empty list for one whole graph. Like ``explain`` it resets
    dynamo's caches: everything compiled before compiles again on its next call."""
    explained = torch._dynamo.explain(fn)(*args)
    return [str(b.reason).strip().splitlines()[0] for b in explained.break_reasons]
