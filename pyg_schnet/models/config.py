"""The one parameter list of SchNet: :class:`SchNetConfig`, its rules and the paper's preset."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple

from pyg_schnet.validation import HEAD_KINDS, OUTPUT_KINDS, check_model_config, normalize_extra_heads

__all__ = ["HEAD_KINDS", "OUTPUT_KINDS", "PAPER_CONFIG", "SchNetConfig", "resolve_config"]


@dataclass(frozen=True)
class SchNetConfig:
    r"""Hyper-parameters of :class:`~pyg_schnet.SchNet`; the defaults are the paper's (section 4, Fig. 2).

    Attributes:
        hidden_channels: atom feature size :math:`F` (paper: 64).
        num_filters: cfconv feature maps (paper: 64).
        num_interactions: interaction blocks, no weight sharing (paper: 3; 0 is the embedding alone).
        num_gaussians: Gaussians :math:`e_k(d) = \exp(-\gamma (d - \mu_k)^2)` with centres evenly
            spaced on ``[rbf_start, rbf_stop]`` (paper: 301 on [0, 30] Angstrom, every 0.1 Angstrom).
        rbf_start, rbf_stop: first and last centre (Angstrom).
        gamma: width :math:`\gamma` (Angstrom^-2; paper: 10).
        cutoff: ``None`` lets every pair of a structure interact (the paper); a radius in Angstrom uses
            a radius graph and a cosine cutoff (needed for periodic structures).
        max_z: atomic numbers ``1 .. max_z - 1`` are accepted.
        output_hidden: width of the atom-wise output layer (paper: 32).
        max_num_neighbors: optional guard: an atom with more neighbours raises (never truncated).
        filter_activation: a shifted softplus after the filter network's second layer (the paper,
            Fig. 2); ``False``: a linear second layer, as PyG's and SchNetPack's SchNet have (models
            converted from them). Files without the field (written before 0.4.1) read as ``True``.
        head_activation: the activation of the output heads' hidden layer: ``"shifted_softplus"``
            (the paper) or ``"silu"`` (SchNetPack 2's default ``Atomwise`` head; models converted from
            it). Files without the field read as ``"shifted_softplus"``.
        rbf_linspace_dtype: the dtype in which the Gaussian centres ``linspace(rbf_start, rbf_stop,
            num_gaussians)`` are computed (they are then held in float64): ``"float64"`` (ours) or
            ``"float32"``, as ``torch.linspace`` builds PyG's and SchNetPack's centres by default (models
            converted from them, :mod:`pyg_schnet.models.convert`). Files without the field read as
            ``"float64"``.
        output: the primary output (:data:`OUTPUT_KINDS`, what ``model(z, pos)`` returns, ``[G]``):
            ``"extensive"`` (the paper's: the sum of atom contributions, energies and other sizes that
            add up over parts: U0, U, H, G, ZPVE, Cv, alpha, r2), ``"intensive"`` (their mean over the
            structure's atoms: HOMO, LUMO, gap; no atom references; :class:`~pyg_schnet.nn.AtomwiseIntensive`)
            or ``"dipole_moment"`` (:math:`|\boldsymbol\mu|` in e*Angstrom of latent atomic charges
            constrained to the total charge, :class:`~pyg_schnet.nn.DipoleMoment`).
        extra_heads: further outputs on the same representation, ``(name, kind)`` pairs with a kind of
            :data:`HEAD_KINDS` (``"extensive"``, ``"intensive"``, ``"dipole"`` (the vector ``[G, 3]``),
            ``"dipole_moment"``); ``model.predict`` returns them by name, the trainer trains them on
            ``data.<name>``. Stored as a tuple of tuples (lists, as JSON writes them, are read back as
            tuples). Files written before 0.4.1 have neither field and read as ``"extensive"`` and ``()``.

    The rules (:func:`pyg_schnet.validation.check_model_config`) are checked on construction, so a
    config that exists is valid; so is the memory of the parameters (:meth:`parameter_count`), which
    must fit in the machine's memory (a :class:`MemoryError` with the estimate, instead of a failed
    allocation when the model is built). ``model.pt`` files store :meth:`as_dict`.
    """

    hidden_channels: int = 64
    num_filters: int = 64
    num_interactions: int = 3
    num_gaussians: int = 301
    rbf_start: float = 0.0
    rbf_stop: float = 30.0
    gamma: float = 10.0
    cutoff: Optional[float] = None
    max_z: int = 100
    output_hidden: int = 32
    max_num_neighbors: Optional[int] = None
    filter_activation: bool = True
    head_activation: str = "shifted_softplus"
    rbf_linspace_dtype: str = "float64"
    output: str = "extensive"
    extra_heads: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_heads", normalize_extra_heads(self.extra_heads))
        check_model_config(self.as_dict())
        check_parameter_memory(self)

    @property
    def head_kinds(self) -> Dict[str, str]:
        """Every output by name: ``{"energy": output, name: kind, ...}`` (primary first)."""
        return {"energy": self.output, **dict(self.extra_heads)}

    def parameter_count(self) -> int:
        r"""Numbers in the model's parameters and buffers. With :math:`F` = ``hidden_channels``,
        :math:`F_f` = ``num_filters``, :math:`K` = ``num_gaussians``, :math:`L` = ``num_interactions``,
        :math:`H` = ``output_hidden``, :math:`Z` = ``max_z``:

        .. math::
            Z F + L \left[(F + 1) F_f + (K + 1) F_f + (F_f + 1) F_f + (F_f + 1) F + (F + 1) F\right]
            + (F + 2) H + 1 + (K + 2 + Z)

        (embedding; per block in2filter, the filter network's two layers, filter2out, out; the head's two
        layers; the Gaussian centres, mean, std and atomrefs). A dipole head has no atomrefs
        (:math:`(F + 2) H + 3`), and every extra head adds its own count.
        """
        f, ff, k, h, z = self.hidden_channels, self.num_filters, self.num_gaussians, self.output_hidden, self.max_z
        block = (f + 1) * ff + (k + 1) * ff + (ff + 1) * ff + (ff + 1) * f + (f + 1) * f

        def head(kind: str) -> int:
            return (f + 2) * h + 1 + (2 if kind in ("dipole", "dipole_moment") else 2 + z)

        heads = sum(head(kind) for kind in self.head_kinds.values())
        return z * f + self.num_interactions * block + heads + k

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "SchNetConfig":
        """A config from keyword options (e.g. a ``model.pt`` field); unknown names raise :class:`TypeError`
        naming them."""
        unknown = sorted(set(options) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown SchNet options: {unknown}; known: {list(cls.field_names())}")
        return cls(**options)

    @staticmethod
    def field_names() -> tuple:
        return tuple(f.name for f in fields(SchNetConfig))

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (what ``model.pt`` stores under ``config``)."""
        return asdict(self)

    def replace(self, **changes: Any) -> "SchNetConfig":
        """A copy with ``changes`` (checked like a new config)."""
        return SchNetConfig.from_dict({**self.as_dict(), **changes})


def physical_memory_bytes() -> Optional[int]:
    """The machine's physical memory in bytes (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_parameter_memory(config: SchNetConfig, limit: Optional[int] = None) -> None:
    """Raise :class:`MemoryError` when the parameters of a model of ``config`` (float32,
    :meth:`SchNetConfig.parameter_count`) need more than ``limit`` bytes (default: the machine's physical
    memory), naming the estimate and the sizes."""
    limit = physical_memory_bytes() if limit is None else limit
    count = config.parameter_count()
    needed = 4 * count
    if limit is not None and needed > limit:
        names = ("hidden_channels", "num_filters", "num_gaussians", "num_interactions", "output_hidden", "max_z")
        sizes = ", ".join(f"{name}={getattr(config, name)}" for name in names)
        raise MemoryError(
            f"SchNet({sizes}) has {count:.3g} parameters, about {needed / 2**30:.3g} GiB in float32 before any "
            f"training or inference memory, more than the {limit / 2**30:.3g} GiB this machine has: choose smaller "
            "sizes (the paper's: hidden_channels=64, num_filters=64, num_gaussians=301, output_hidden=32)"
        )


def resolve_config(config: Optional[SchNetConfig], options: Mapping[str, Any]) -> SchNetConfig:
    """``config`` (default: the paper's) with the fields of ``options`` replaced."""
    if config is not None and not isinstance(config, SchNetConfig):
        raise TypeError(
            f"expected a SchNetConfig, got {type(config).__name__}; pass sizes by name, "
            "e.g. SchNet(hidden_channels=128)"
        )
    base = config if config is not None else SchNetConfig()
    return base.replace(**options) if options else base


#: The paper's configuration as a dict (section 4, Fig. 2): F = 64, three interaction blocks,
#: Gaussians every 0.1 Angstrom on [0, 30] Angstrom with gamma = 10 Angstrom^-2, no cutoff, a 32-unit
#: output layer. The same as ``SchNetConfig().as_dict()``.
PAPER_CONFIG: Dict[str, Any] = SchNetConfig().as_dict()
