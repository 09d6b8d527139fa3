r"""SchNets trained elsewhere as our :class:`~pyg_schnet.SchNet`: PyG's and SchNetPack 2's, exactly.

:func:`from_pyg` converts a ``torch_geometric.nn.models.SchNet`` (a module, or its ``state_dict``
with its constructor arguments), :func:`from_schnetpack` a SchNetPack 2 SchNet potential. Where their
architecture differs from the paper's, the converted model takes the configuration that computes
theirs, never an approximation:

- filter network: the paper puts a shifted softplus (ssp) after its second layer; PyG and SchNetPack do
  not -> ``filter_activation=False``;
- Gaussians: the paper's :math:`\gamma = 10` on 0..30 Angstrom; PyG's
  :math:`\gamma = 1 / (2 \Delta\mu^2)` on 0..cutoff, SchNetPack's widths :math:`w`,
  :math:`\gamma = 1 / (2 w^2)` -> ``gamma``, ``rbf_start``, ``rbf_stop`` (and the centres' float32
  ``linspace``: ``rbf_linspace_dtype="float32"``);
- cutoff: none in the paper; PyG's cosine cutoff is always on, SchNetPack's ``CosineCutoff`` ->
  ``cutoff``;
- neighbours: all of them in ours; PyG keeps at most ``max_num_neighbors`` -> our guard of that number
  (a structure with more raises);
- the cfconv input layer has no bias in either -> an exact zero bias;
- head: the paper's 32 hidden units with ssp; PyG ``hidden_channels // 2``, SchNetPack's ``Atomwise``
  width -> ``output_hidden``; SchNetPack's default SiLU -> ``head_activation="silu"``; PyG's
  ``readout="mean"`` -> ``output="intensive"``;
- standardisation: ``std * y + mean + atomref`` per atom; PyG's ``mean`` / ``std`` / ``atomref`` /
  ``scale``, SchNetPack's ``AddOffsets`` / ``ScaleProperty`` -> ``std``, ``mean``, ``atomref``.

Numbers agree to rounding (float64: SchNetPack 1e-15, PyG 1e-7 of the energy, 2e-8 of the largest
force, from PyG's float64 ``mean`` / ``std`` held in the model's float32 and its softplus, which returns
:math:`x` above 20, ours above 40: a difference below :math:`e^{-20} = 2 \cdot 10^{-9}`). Both libraries
build their Gaussian centres with ``torch.linspace`` in float32, which ``rbf_linspace_dtype="float32"``
reproduces bit for bit; our float64 centres are a few float32 ulps off theirs (2e-7 Angstrom at 5
Angstrom), which moved forces by up to 1.1e-6 of the largest on random molecules.

Model files of neither library record units: both functions require ``energy_unit``. What cannot be
converted exactly is refused with a :class:`NotConvertibleError` naming the part.
"""

from pyg_schnet.models.convert.common import NotConvertibleError
from pyg_schnet.models.convert.pyg import from_pyg
from pyg_schnet.models.convert.schnetpack import from_schnetpack, import_schnetpack

__all__ = ["NotConvertibleError", "from_pyg", "from_schnetpack", "import_schnetpack"]
