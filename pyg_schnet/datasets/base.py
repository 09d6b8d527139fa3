"""The one base class of our data sets: raw files, download, verification, atomic processing, splits.

A data set subclass declares only what is its own:

* :attr:`AtomsDataset.raw_file_names` -- the files it reads, relative to ``root/raw``;
* :attr:`AtomsDataset.remote_files` -- where the published files come from
  (:class:`RemoteFile`: URL, file name, the raw files it yields, whether it is an archive);
* :meth:`AtomsDataset.read_raw` -- the parser, returning an :class:`AtomsTable`;
* optionally :meth:`AtomsDataset.verify_download` for checks beyond size and archive integrity.

Everything else lives here:

* **Raw files first.** When every raw file exists, nothing touches the network.
* **Download.** Missing files are fetched with :mod:`urllib` and a :mod:`tqdm` progress bar into
  a temporary file, checked (byte count against ``Content-Length`` and the declared size, a full
  read of archives, the published counts) and only then moved into place; archives are unpacked
  through a temporary folder. Without a network -- or with ``PYG_SCHNET_OFFLINE=1`` -- the error
  lists every missing file, its URL and the path to put it at.
* **Checked data.** Every table a parser returns passes :meth:`AtomsTable.validate` (atomic
  numbers, finiteness, coordinate bound, coincident atoms) before anything is written; errors name
  the raw file and the frame, row or molecule in it.
* **Safe, atomic processing.** The processed file holds tensors and a record of what it was built
  from (:mod:`.processed`); it is read with ``torch.load(weights_only=True)`` only, and written to a
  temporary name and moved into place with :func:`os.replace`. PyG's ``pre_transform.pt`` and
  ``pre_filter.pt`` pickles are never read nor written. A processed file that is not tensors-only,
  was built with another ``pre_transform`` / ``pre_filter`` or from raw files that changed since is
  rebuilt, with a message saying why. A failed or interrupted run leaves no file a later run would
  trust, and the next run deletes stale temporaries and starts clean.
* **Splits.** :meth:`AtomsDataset.random_split` gives the paper's seeded splits.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from pyg_schnet.datasets._io import atomic_path, atomic_write_text, remove_stale_temporaries
from pyg_schnet.datasets.download import (
    OFFLINE_ENV,
    CompleteTarInfo,
    IncompleteTarError,
    RemoteFile,
    check_tar_archive,
    fetch_url,
    open_tar_stream,
)
from pyg_schnet.datasets.errors import (
    DownloadVerificationError,
    DuplicateFramesWarning,
    ProcessedFileError,
    RawFileError,
    RawFilesMissingError,
)
from pyg_schnet.datasets.processed import (
    ProcessedContent,
    describe,
    load_processed,
    raw_records,
    save_processed,
    stale_reason,
)
from pyg_schnet.datasets.raw_files import check_no_link_loop
from pyg_schnet.datasets.split import SplitIndices, describe_repeats, random_split, repeated_frames
from pyg_schnet.datasets.table import MIN_ATOM_DISTANCE, AtomsTable

__all__ = [
    "AtomsDataset",
    "AtomsTable",
    "RemoteFile",
    "RawFileError",
    "RawFilesMissingError",
    "DownloadVerificationError",
    "ProcessedFileError",
    "IncompleteTarError",
    "open_tar_stream",
    "fetch_url",
    "OFFLINE_ENV",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class AtomsDataset(InMemoryDataset):
    """Base class: a folder of raw files in, a verified, atomically processed data set out.

    Subclasses set :attr:`raw_file_names`, :attr:`remote_files`, :attr:`processed_stem` and
    implement :meth:`read_raw`. Every attribute a subclass needs to name its files must be set
    before calling ``super().__init__``, which checks, downloads and processes.

    Args:
        root: the data set folder; raw files live in ``root/raw``, processed ones in
            ``root/processed``.
        transform, pre_transform, pre_filter: as in :class:`~torch_geometric.data.InMemoryDataset`;
            ``pre_transform`` and ``pre_filter`` are recorded by a description
            (:func:`~.processed.describe`) in the processed file, and a different one on a later
            open rebuilds the data set (with a message), as does a changed raw file.
        force_reload: process again even when an up-to-date processed file exists.
        log: print progress to stderr (outside pytest).

    Attributes:
        rebuild_reason: why an existing processed file was not used and the data set was rebuilt
            on this open (``None`` when it was used, or when there was none).
        build_record: the record of the processed file in use: data set, variant, layout version,
            ``pre_transform`` / ``pre_filter`` descriptions and each raw file's name, size,
            modification time and sha256.
    """

    #: The unit of ``Data.energy`` and ``Data.force`` (subclasses override).
    energy_unit: str = ""
    #: The physics of the target in ``Data.energy``: ``"extensive"`` (a sum over parts: energies, the
    #: default), ``"intensive"`` (HOMO, LUMO, gap) or ``"dipole_moment"`` (the norm of a dipole, e*Angstrom);
    #: the trainer warns when a model's ``config.output`` disagrees (:class:`pyg_schnet.train.heads.TargetKindWarning`).
    target_kind: str = "extensive"
    force_unit: str = ""
    distance_unit: str = "Angstrom"
    #: Bump when the processed layout changes, so that old processed files are not trusted.
    #: 2: tensors-only file with a build record (:mod:`.processed`); 1 was PyG's pickled layout.
    format_version: int = 2
    #: Two atoms of one molecule closer than this (Angstrom) are refused at load time.
    min_atom_distance: float = MIN_ATOM_DISTANCE

    def __init__(
        self,
        root: PathLike,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        pre_filter: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        check_no_link_loop(root, f"{self.__class__.__name__}: data root")
        for name in self._raw_names():
            check_no_link_loop(os.path.join(root, "raw", name), f"{self.__class__.__name__}: raw file")
        check_no_link_loop(os.path.join(root, "processed"), f"{self.__class__.__name__}: processed folder")
        for folder in ("raw", "processed"):
            removed = remove_stale_temporaries(os.path.join(root, folder))
            for path in removed:
                logger.info("removed %s left by an interrupted run", path)
        raw = Path(root) / "raw"
        if raw.is_dir():
            for staging in raw.glob(".extract-*"):
                if staging.is_dir():
                    shutil.rmtree(staging, ignore_errors=True)
        self.rebuild_reason: Optional[str] = None
        self.build_record: Dict[str, Any] = {}
        self._content: Optional[ProcessedContent] = None
        # PyG's Dataset.__init__ downloads (our download()) and calls our _process()
        super().__init__(root, transform, pre_transform, pre_filter, log=log, force_reload=force_reload)
        content, self._content = self._content, None
        if content is None:  # just processed: read back what was written
            content = load_processed(self.processed_paths[0])
        self._use(content)

    # ----------------------------------------------------------------------------------------
    # What a subclass declares
    # ----------------------------------------------------------------------------------------
    @property
    def raw_file_names(self) -> List[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def remote_files(self) -> Sequence[RemoteFile]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def processed_stem(self) -> str:  # pragma: no cover - abstract
        """File name stem of the processed file, unique per data set variant in one root."""
        raise NotImplementedError

    def read_raw(self) -> AtomsTable:  # pragma: no cover - abstract
        """Parse the raw files into an :class:`AtomsTable`; raise :class:`RawFileError` on bad input."""
        raise NotImplementedError

    def processing_summary(self) -> Dict[str, object]:
        """Counts worth reporting after :meth:`read_raw` (written next to the processed file)."""
        return {}

    def check_table(self, table: AtomsTable) -> None:
        """Checks of this data set's own on a validated table (e.g. ISO17's composition); raise
        :class:`RawFileError` naming the file and the row. The default checks nothing."""

    def verify_download(self, remote: RemoteFile, path: Path) -> None:
        """Check a freshly downloaded file before it is moved into ``root/raw``.

        The default checks the declared size and, for tar archives, reads every member (which
        checks the compression's CRCs), compares the number of files with
        :attr:`RemoteFile.expected_members` and looks for every path in :attr:`RemoteFile.provides`.
        Subclasses extend it with content checks (e.g. published counts) and raise
        :class:`DownloadVerificationError`.
        """
        size = path.stat().st_size
        if remote.size is not None and size != remote.size:
            raise DownloadVerificationError(
                f"{remote.filename} from {remote.url} has {size} bytes, the published file has {remote.size}"
            )
        if remote.extract or remote.expected_members is not None:
            check_tar_archive(path, remote, must_contain=remote.provides if remote.extract else ())

    # ----------------------------------------------------------------------------------------
    # Files
    # ----------------------------------------------------------------------------------------
    @property
    def processed_file_names(self) -> List[str]:
        return [f"{self.processed_stem}_v{self.format_version}.pt"]

    @property
    def summary_path(self) -> Path:
        """JSON file with the counts of the last processing run (a copy for people to read)."""
        return Path(self.processed_dir) / f"{self.processed_stem}_v{self.format_version}.json"

    @property
    def summary(self) -> Dict[str, object]:
        """The counts of the processing run that wrote the processed file in use (kept in its record,
        so they always belong to the data loaded; empty when none were recorded)."""
        return dict(self.build_record.get("summary", {}))

    def missing_raw_files(self) -> List[str]:
        """Raw file names (relative to ``root/raw``) that do not exist."""
        return [name for name, path in zip(self._raw_names(), self.raw_paths) if not os.path.exists(path)]

    def _raw_names(self) -> List[str]:
        names = self.raw_file_names
        return [names] if isinstance(names, str) else list(names)

    def _remote_for(self, raw_name: str) -> Optional[RemoteFile]:
        target = os.path.normpath(raw_name)
        for remote in self.remote_files:
            if target in {os.path.normpath(p) for p in remote.yields}:
                return remote
        return None

    def offline_instructions(self, missing: Sequence[str]) -> str:
        """How to place each missing raw file by hand: its path, its URL and what to do with it."""
        lines = []
        for name in missing:
            remote = self._remote_for(name)
            target = os.path.join(self.raw_dir, name)
            if remote is None:
                lines.append(f"  - {target}  (no published URL known; place the file there)")
            elif remote.extract:
                lines.append(
                    f"  - {target}\n      from the archive {remote.url}\n"
                    f"      (save it as {os.path.join(self.raw_dir, remote.filename)} or unpack it into "
                    f"{self.raw_dir} yourself, so that this path exists)"
                )
            else:
                lines.append(f"  - {target}\n      download {remote.url} and save it under exactly this name")
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------
    # Download (only ever called by PyG when a raw file is missing)
    # ----------------------------------------------------------------------------------------
    def download(self) -> None:
        missing = self.missing_raw_files()
        # archives placed by hand in root/raw are unpacked first, without any network
        for remote in self._remotes_for(missing):
            if remote.extract and (Path(self.raw_dir) / remote.filename).is_file():
                self._download_remote(remote)
        missing = self.missing_raw_files()
        if not missing:
            return
        header = f"{self.__class__.__name__}: {len(missing)} raw file(s) missing under {self.raw_dir}:"
        if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
            raise RawFilesMissingError(
                f"{header}\n{self.offline_instructions(missing)}\n"
                f"Downloads are disabled ({OFFLINE_ENV} is set); place the files as listed."
            )
        if any(self._remote_for(name) is None for name in missing):
            raise RawFilesMissingError(f"{header}\n{self.offline_instructions(missing)}")
        for remote in self._remotes_for(missing):
            try:
                self._download_remote(remote)
            except DownloadVerificationError:
                raise
            except OSError as exc:  # URLError, HTTPError, timeouts, refused connections
                raise RawFilesMissingError(
                    f"{header}\n{self.offline_instructions(missing)}\n"
                    f"Downloading {remote.url} failed ({exc}); without a network, place the files as listed."
                ) from exc
        still = self.missing_raw_files()
        if still:
            raise RawFilesMissingError(
                f"{header}\n{self.offline_instructions(still)}\nThe download completed but did not provide these files."
            )

    def _remotes_for(self, names: Sequence[str]) -> List[RemoteFile]:
        remotes: List[RemoteFile] = []
        for name in names:
            remote = self._remote_for(name)
            if remote is not None and remote not in remotes:
                remotes.append(remote)
        return remotes

    def _fetch(self, url: str, destination: Path, description: str) -> int:
        """The one place that touches the network (tests replace it)."""
        return fetch_url(url, destination, description)

    def _download_remote(self, remote: RemoteFile) -> None:
        os.makedirs(self.raw_dir, exist_ok=True)
        target = Path(self.raw_dir) / remote.filename
        if remote.extract and target.is_file():  # an archive placed by hand: unpack it, keep it
            self._say(f"Unpacking {target} (placed by hand)")
            try:
                self.verify_download(remote, target)
            except Exception as exc:
                raise DownloadVerificationError(f"{target} (placed by hand) failed verification: {exc}") from exc
            self._extract(target, remote)
            return
        self._say(f"Downloading {remote.url} -> {target}")
        with atomic_path(target) as tmp:
            self._fetch(remote.url, tmp, remote.filename)
            try:
                self.verify_download(remote, tmp)
            except DownloadVerificationError:
                raise
            except Exception as exc:  # a parser-level failure inside a verification hook
                raise DownloadVerificationError(
                    f"{remote.filename} from {remote.url} failed verification: {exc}"
                ) from exc
        if remote.extract:
            try:
                self._extract(target, remote)
            finally:
                target.unlink(missing_ok=True)

    def _extract(self, archive: Path, remote: RemoteFile) -> None:
        """Unpack into a temporary folder inside ``root/raw``, then move each file into place."""
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=self.raw_dir))
        try:
            with tarfile.open(archive, mode="r:*", tarinfo=CompleteTarInfo) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    for member in tar.getmembers():
                        target = (staging / member.name).resolve()
                        if not str(target).startswith(str(staging.resolve())):
                            raise DownloadVerificationError(
                                f"{remote.filename}: member {member.name!r} points outside the archive folder"
                            )
                    tar.extractall(staging)
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    destination = Path(self.raw_dir) / path.relative_to(staging)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # ----------------------------------------------------------------------------------------
    # Processing (safe and atomic)
    # ----------------------------------------------------------------------------------------
    def _raw_entries(self) -> List[Tuple[str, str]]:
        return list(zip(self._raw_names(), self.raw_paths))

    def _wanted_record(self) -> Dict[str, Any]:
        """The record a processed file must carry to be used now (raw files aside)."""
        return {
            "dataset": self.__class__.__name__,
            "variant": self.processed_stem,
            "format_version": self.format_version,
            "pre_transform": describe(self.pre_transform),
            "pre_filter": describe(self.pre_filter),
        }

    def _process(self) -> None:
        """Use the processed file if it is tensors-only and up to date, else (re)build it.

        Replaces :meth:`torch_geometric.data.Dataset._process`, which unpickles
        ``processed/pre_transform.pt`` and ``pre_filter.pt`` with ``weights_only=False`` (running
        whatever code they hold) and only warns when they differ. Here those files are never read;
        the processed file's own record decides (:func:`~.processed.stale_reason`).
        """
        path = Path(self.processed_paths[0])
        if not self.force_reload and path.exists():
            try:
                content = load_processed(path)
                reason = stale_reason(content.record, self._wanted_record(), self._raw_entries())
            except ProcessedFileError as exc:
                reason = str(exc)
            if reason is None:
                self._content = content
                return
            self.rebuild_reason = reason
            self._say(f"{self.__class__.__name__}: rebuilding {path} from the raw files: {reason}", warn=True)
        os.makedirs(self.processed_dir, exist_ok=True)
        self.process()

    def load(self, path: str, data_cls: type = Data) -> None:
        """Load a processed file with tensors-only unpickling (replaces PyG's ``InMemoryDataset.load``)."""
        self._use(load_processed(path), data_cls)

    def _use(self, content: ProcessedContent, data_cls: type = Data) -> None:
        self._data = data_cls.from_dict(content.data)
        self.slices = content.slices
        self._data_list = None
        self.build_record = content.record

    def process(self) -> None:
        record = self._wanted_record()
        record["raw_files"] = raw_records(self._raw_entries())  # before parsing: a later change is seen
        table = self.read_raw()
        if len(table) == 0:
            raise RawFileError(f"{self.__class__.__name__}: the raw files under {self.raw_dir} hold no molecules")
        table.validate(self.min_atom_distance)
        self.check_table(table)
        summary = dict(self.processing_summary())
        repeats = describe_repeats(repeated_frames(table.atom_fields["z"], table.atom_fields["pos"], table.num_atoms))
        if repeats is not None:
            summary["repeated_frames"] = repeats
            self._say(
                f"{self.__class__.__name__}: {table.source}: {repeats}; random_split(..., unique=True) splits "
                "the distinct ones only",
                warn=True,
            )
        if self.pre_filter is None and self.pre_transform is None:
            data, slices = table.collated()
        else:
            data_list = []
            for g in range(len(table)):
                item = table.get(g)
                if self.pre_filter is not None and not self.pre_filter(item):
                    continue
                if self.pre_transform is not None:
                    item = self.pre_transform(item)
                data_list.append(item)
            if not data_list:
                raise ValueError(f"{self.__class__.__name__}: pre_filter rejected all {len(table)} molecules")
            summary["kept_by_pre_filter"] = len(data_list)
            data, slices = self.collate(data_list)
            if slices is None:  # a single molecule: store it with explicit slices like the others
                slices = {
                    key: torch.tensor([0, value.size(data.__cat_dim__(key, value))])
                    for key, value in data.items()
                    if isinstance(value, Tensor)
                }
        summary["num_molecules"] = len(slices[next(iter(slices))]) - 1
        record["summary"] = summary
        save_processed(self.processed_paths[0], data.to_dict(), slices, record)
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        self._say(f"{self.__class__.__name__}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))

    def _say(self, message: str, warn: bool = False) -> None:
        logger.log(logging.WARNING if warn else logging.INFO, message)
        if self.log and "PYTEST_CURRENT_TEST" not in os.environ:
            print(message, file=sys.stderr)

    # ----------------------------------------------------------------------------------------
    # Splits
    # ----------------------------------------------------------------------------------------
    def repeated_frames(self) -> Tensor:
        """For each example of this data set (in its order), the position of the first example with the
        same atoms and bit-for-bit the same positions (:func:`~pyg_schnet.datasets.split.repeated_frames`)."""
        if getattr(self, "_repeats", None) is None:
            data, slices = self._data, self.slices
            self._repeats = repeated_frames(data.z, data.pos, slices["pos"].diff())
        first = self._repeats
        if self._indices is None:
            return first
        chosen = torch.as_tensor(list(self.indices()), dtype=torch.long)
        groups = first[chosen]
        _, inverse = torch.unique(groups, return_inverse=True)
        earliest = torch.full((int(inverse.max()) + 1 if inverse.numel() else 0,), len(chosen), dtype=torch.long)
        earliest = earliest.scatter_reduce(0, inverse, torch.arange(len(chosen)), reduce="amin")
        return earliest[inverse]

    def random_split(
        self, n_train: int, n_val: int = 1000, seed: int = 0, n_test: Optional[int] = None, unique: bool = False
    ) -> SplitIndices:
        """The paper's protocol on this data set: see :func:`pyg_schnet.datasets.random_split`.

        Examples that repeat an earlier one (:meth:`repeated_frames`) would land in training and test
        alike: with ``unique=False`` that gives a :class:`~pyg_schnet.datasets.errors.DuplicateFramesWarning`
        naming how many and the first ones; ``unique=True`` splits the distinct examples only (the first
        copy of each; the sizes count distinct examples).
        """
        first = self.repeated_frames()
        own = first == torch.arange(first.numel())
        if bool(own.all()):
            return random_split(len(self), n_train, n_val=n_val, seed=seed, n_test=n_test)
        if unique:
            return random_split(
                len(self), n_train, n_val=n_val, seed=seed, n_test=n_test, distinct=own.nonzero().flatten()
            )
        warnings.warn(
            DuplicateFramesWarning(
                f"{self.__class__.__name__}: {describe_repeats(first, 'examples')}: a random split puts copies of "
                "one example into both the training and the test set; pass unique=True to split the distinct "
                "examples only"
            ),
            stacklevel=2,
        )
        return random_split(len(self), n_train, n_val=n_val, seed=seed, n_test=n_test)
