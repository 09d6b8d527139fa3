"""Hyper-parameter sets under which pyg-schnet and its peers are compared.

Every benchmark builds all implementations from one :class:`ModelConfig`, so that they compute the
same model: the same feature and filter widths, the same number of interaction blocks, the same
Gaussian centres and width, the same interaction graph and the same atom-wise head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional


@dataclass(frozen=True)
class ModelConfig:
    r"""One SchNet configuration, in the units of the library (Angstrom, Angstrom^-2).

    The Gaussian expansion is :math:`e_k(d) = \exp(-\gamma (d - \mu_k)^2)` with ``num_gaussians``
    centres :math:`\mu_k` evenly spaced on ``[rbf_start, rbf_stop]``.

    ``cutoff=None`` lets every pair of atoms in a molecule interact, with no cutoff function (the
    paper); PyG's and SchNetPack's SchNet always multiply the filters by a cosine cutoff, which for
    such a configuration is placed at ``rbf_stop`` (:attr:`peer_cutoff`), beyond every pair of the
    molecules benchmarked, so that they see the same pairs.
    """

    name: str
    hidden_channels: int
    num_filters: int
    num_interactions: int
    num_gaussians: int
    rbf_start: float
    rbf_stop: float
    gamma: float
    cutoff: Optional[float]
    output_hidden: int

    @property
    def peer_cutoff(self) -> float:
        """The radius of the cosine cutoff of the peers (Angstrom)."""
        return float(self.cutoff) if self.cutoff is not None else float(self.rbf_stop)

    def ours_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :class:`pyg_schnet.SchNet` for this configuration."""
        out = asdict(self)
        del out["name"]
        return out

    def describe(self) -> str:
        graph = "all pairs, no cutoff" if self.cutoff is None else f"cosine cutoff {self.cutoff:g} A"
        return (
            f"{self.hidden_channels}/{self.num_filters}/{self.num_interactions}, {self.num_gaussians} Gaussians "
            f"{self.rbf_start:g}-{self.rbf_stop:g} A, gamma {self.gamma:g} A^-2, {graph}, "
            f"head {self.hidden_channels}-{self.output_hidden}-1"
        )


#: The paper (section 4): 64 features and filters, 3 interactions, 301 Gaussians on 0-30 A, gamma 10,
#: every pair of a molecule interacts.
PAPER = ModelConfig("paper", 64, 64, 3, 301, 0.0, 30.0, 10.0, None, 32)

#: The configuration most SchNet users train (SchNetPack's defaults): 128 features and filters,
#: 6 interactions, 50 Gaussians on 0-10 A with gamma 10, cosine cutoff at 10 A, a 128-64-1 head.
COMMON = ModelConfig("common", 128, 128, 6, 50, 0.0, 10.0, 10.0, 10.0, 64)

#: ``benchmarks/batching.py``: the paper's widths with a cosine cutoff at 30 A (every pair of the
#: molecules measured lies within it).
BATCHING = ModelConfig("batching", 64, 64, 3, 301, 0.0, 30.0, 10.0, 30.0, 32)

#: The scale benchmark: the common widths with a fixed 5 A cutoff and 50 Gaussians on 0-5 A.
SCALE = ModelConfig("scale", 128, 128, 6, 50, 0.0, 5.0, 10.0, 5.0, 64)

#: Periodic structures (``benchmarks/compiled_inference.py``): the paper's widths with 50 Gaussians on
#: 0-5 A and a 5 A cosine cutoff (the model of ``benchmarks/periodic.py``'s timed call).
PERIODIC = ModelConfig("periodic", 64, 64, 3, 50, 0.0, 5.0, 10.0, 5.0, 32)

CONFIGS: Dict[str, ModelConfig] = {c.name: c for c in (PAPER, COMMON, BATCHING, SCALE, PERIODIC)}
