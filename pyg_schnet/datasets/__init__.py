"""QM9, MD17 (and rMD17), MD22 and ISO17 as PyG in-memory data sets, with the paper's splits and unit conversions.

Example::

    from pyg_schnet.datasets import MD17, ScaleUnits
    ds = MD17("data/md17", "ethanol")             # downloads, verifies and processes once
    split = ds.random_split(n_train=1000)          # 1,000 train, 1,000 validation, rest test
"""

from pyg_schnet.datasets.ase_files import ASEDataset
from pyg_schnet.datasets.base import (
    AtomsDataset,
    AtomsTable,
    DownloadVerificationError,
    ProcessedFileError,
    RawFileError,
    RawFilesMissingError,
    RemoteFile,
)
from pyg_schnet.datasets.iso17 import ISO17
from pyg_schnet.datasets.md17 import MD17
from pyg_schnet.datasets.md22 import MD22
from pyg_schnet.datasets.qm9 import QM9
from pyg_schnet.datasets.split import SplitIndices, random_split
from pyg_schnet.datasets.transforms import EV_TO_KCAL_PER_MOL, HARTREE_TO_EV, HARTREE_TO_KCAL_PER_MOL, ScaleUnits

__all__ = [
    "QM9",
    "MD17",
    "MD22",
    "ISO17",
    "ASEDataset",
    "random_split",
    "SplitIndices",
    "ScaleUnits",
    "AtomsDataset",
    "AtomsTable",
    "RemoteFile",
    "RawFileError",
    "RawFilesMissingError",
    "DownloadVerificationError",
    "ProcessedFileError",
    "EV_TO_KCAL_PER_MOL",
    "HARTREE_TO_EV",
    "HARTREE_TO_KCAL_PER_MOL",
]
