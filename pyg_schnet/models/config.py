"""The one parameter list of SchNet: :class:`SchNetConfig`, its rules and the paper's preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional

from pyg_schnet.validation import check_model_config


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

    The rules (:func:`pyg_schnet.validation.check_model_config`) are checked on construction, so a
    config that exists is valid. ``model.pt`` files store :meth:`as_dict`.
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

    def __post_init__(self) -> None:
        check_model_config(self.as_dict())

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
