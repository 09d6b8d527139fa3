"""Issue 8, data side: opening a data folder runs no code, and a stale processed file is never served.

* A pickle planted at ``processed/pre_transform.pt``, ``pre_filter.pt`` or as the processed file itself
  is never executed (PyG's ``InMemoryDataset`` unpickles the first two with ``weights_only=False``).
* The processed file records the raw files (size, modification time, sha256) and the
  ``pre_transform`` / ``pre_filter`` descriptions; a change rebuilds the data set, with a message.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import InMemoryDataset

from pyg_schnet.datasets import MD17, ProcessedFileError
from pyg_schnet.datasets.processed import PROCESSED_FORMAT, describe, load_processed


class Payload:
    """Unpickling this object calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def ethanol(shared_data: Path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: f[k] for k in ("z", "R", "E", "F")}


def write_frames(root: Path, ethanol, frames) -> Path:
    path = root / "raw" / "md17_ethanol.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # through a handle: np.savez never renames it
        np.savez(handle, z=ethanol["z"], R=ethanol["R"][frames], E=ethanol["E"][frames], F=ethanol["F"][frames])
    return path


def processed_file(root: Path) -> Path:
    return root / "processed" / "md17_ethanol_v2.pt"


# ----------------------------------------------------------------------------------------------
# defect 1: no code runs from a data folder
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("planted", ["pre_transform.pt", "pre_filter.pt"])
def test_planted_pickle_beside_the_processed_file_never_runs(tmp_path, ethanol, planted, caplog):
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 50))
    MD17(root, "ethanol")
    assert sorted(p.name for p in (root / "processed").iterdir()) == ["md17_ethanol_v2.json", "md17_ethanol_v2.pt"]
    marker = tmp_path / "marker"
    torch.save(Payload(marker), root / "processed" / planted)
    for kwargs in ({}, {"pre_transform": lambda d: d}, {"force_reload": True}):
        ds = MD17(root, "ethanol", **kwargs)
        assert len(ds) == 50
        assert not marker.exists(), f"opening the data set with {kwargs} executed {planted}"
    # positive control: the planted file does run code when unpickled the way PyG does
    torch.load(root / "processed" / planted, weights_only=False)
    assert marker.exists()


def test_planted_pickle_as_the_processed_file_is_refused_and_rebuilt(tmp_path, ethanol, caplog):
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 50))
    reference = MD17(root, "ethanol")
    marker = tmp_path / "marker"
    torch.save({"format": PROCESSED_FORMAT, "data": Payload(marker)}, processed_file(root))
    with caplog.at_level(logging.WARNING, logger="pyg_schnet.datasets.base"):
        ds = MD17(root, "ethanol")
    assert not marker.exists()
    assert "is not a tensors-only file and was not unpickled" in ds.rebuild_reason
    assert "rebuilding" in caplog.text and str(processed_file(root)) in caplog.text
    assert torch.equal(ds._data.pos, reference._data.pos)
    load_processed(processed_file(root))  # the planted file was replaced by a clean one
    torch.save(Payload(marker), tmp_path / "evil.pt")
    with pytest.raises(ProcessedFileError, match="not a tensors-only file"):
        reference.load(str(tmp_path / "evil.pt"))  # the public load() is weights-only too
    assert not marker.exists()


def test_pyg_layout_and_damaged_processed_files_are_rebuilt(tmp_path, ethanol):
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 50))
    ds = MD17(root, "ethanol")
    # PyG's own layout (what format_version 1 wrote): readable, but it carries no build record
    data, slices = InMemoryDataset.collate([ds[i] for i in range(10)])
    torch.save((data.to_dict(), slices, data.__class__), processed_file(root))
    again = MD17(root, "ethanol")
    assert len(again) == 50 and "is not a pyg_schnet.processed/1 file" in again.rebuild_reason
    payload = processed_file(root).read_bytes()
    processed_file(root).write_bytes(payload[: len(payload) // 2])
    again = MD17(root, "ethanol")
    assert len(again) == 50 and "is unreadable" in again.rebuild_reason
    assert MD17(root, "ethanol").rebuild_reason is None  # the rebuilt file is used as it is


def test_half_written_pyg_pickles_do_not_lock_the_data_set(tmp_path, ethanol):
    # PyG writes these two files non-atomically; a kill mid-write left a data set PyG could not open
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 20))
    MD17(root, "ethanol")
    for name in ("pre_transform.pt", "pre_filter.pt"):
        (root / "processed" / name).write_bytes(b"\x80\x04\x95half a pickle")
    assert len(MD17(root, "ethanol")) == 20


# ----------------------------------------------------------------------------------------------
# defect 5: a stale processed cache is never served
# ----------------------------------------------------------------------------------------------
def test_replaced_raw_file_is_reprocessed(tmp_path, ethanol, caplog):
    root = tmp_path / "md17"
    path = write_frames(root, ethanol, slice(0, 40))
    assert len(MD17(root, "ethanol")) == 40
    write_frames(root, ethanol, slice(100, 160))  # a different file of another size
    with caplog.at_level(logging.WARNING, logger="pyg_schnet.datasets.base"):
        ds = MD17(root, "ethanol")
    assert len(ds) == 60 and ds.summary["num_molecules"] == 60
    np.testing.assert_array_equal(ds._data.energy.numpy(), ethanol["E"][100:160, 0])
    assert f"the raw file {path} changed since it was processed (size" in ds.rebuild_reason
    assert "rebuilding" in caplog.text
    record = ds.build_record["raw_files"][0]
    assert record["name"] == "md17_ethanol.npz" and record["size"] == path.stat().st_size
    import hashlib

    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_size_raw_file_with_other_frames_is_reprocessed(tmp_path, ethanol):
    root = tmp_path / "md17"
    path = write_frames(root, ethanol, slice(0, 40))
    size = path.stat().st_size
    first = MD17(root, "ethanol")
    write_frames(root, ethanol, slice(200, 240))
    assert path.stat().st_size == size  # same shapes, same npz size: only the content tells
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ds = MD17(root, "ethanol")
    assert "same size, sha256" in ds.rebuild_reason
    np.testing.assert_array_equal(ds._data.energy.numpy(), ethanol["E"][200:240, 0])
    assert not torch.equal(ds._data.pos, first._data.pos)


def test_touched_raw_file_with_the_same_content_is_not_reprocessed(tmp_path, ethanol, monkeypatch):
    root = tmp_path / "md17"
    path = write_frames(root, ethanol, slice(0, 40))
    MD17(root, "ethanol")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    monkeypatch.setattr(MD17, "read_raw", lambda self: pytest.fail("reprocessed an unchanged raw file"))
    ds = MD17(root, "ethanol")
    assert ds.rebuild_reason is None and len(ds) == 40


class Shift:
    """A pre_transform with parameters its repr states."""

    def __init__(self, dz: float) -> None:
        self.dz = dz

    def __call__(self, data):
        data = data.clone()
        data.pos = data.pos + torch.tensor([0.0, 0.0, self.dz])
        return data

    def __repr__(self) -> str:
        return f"Shift(dz={self.dz})"


def test_changed_pre_transform_rebuilds(tmp_path, ethanol, caplog):
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 30))
    plain = MD17(root, "ethanol")
    shifted = MD17(root, "ethanol", pre_transform=Shift(1.0))
    assert (
        "the pre_transform differs from the one it was built with (built with None; now Shift(dz=1.0))"
        in shifted.rebuild_reason
    )
    torch.testing.assert_close(shifted._data.pos[:, 2], plain._data.pos[:, 2] + 1.0)
    with caplog.at_level(logging.WARNING, logger="pyg_schnet.datasets.base"):
        more = MD17(root, "ethanol", pre_transform=Shift(2.0))
    assert "Shift(dz=2.0)" in more.rebuild_reason and "rebuilding" in caplog.text
    torch.testing.assert_close(more._data.pos[:, 2], plain._data.pos[:, 2] + 2.0)
    assert MD17(root, "ethanol", pre_transform=Shift(2.0)).rebuild_reason is None  # same description: used
    assert not (root / "processed" / "pre_transform.pt").exists()  # PyG's pickles are never written


def test_changed_pre_filter_rebuilds(tmp_path, ethanol):
    root = tmp_path / "md17"
    write_frames(root, ethanol, slice(0, 30))
    threshold = float(np.median(ethanol["E"][:30]))

    def low(threshold):
        return lambda d: float(d.energy) < threshold

    below = MD17(root, "ethanol", pre_filter=low(threshold))
    assert len(below) == 15
    everything = MD17(root, "ethanol", pre_filter=low(0.0))  # same code, another closure value
    assert len(everything) == 30 and "pre_filter differs" in everything.rebuild_reason
    other_code = MD17(root, "ethanol", pre_filter=lambda d: float(d.energy) >= threshold)
    assert len(other_code) == 15 and "pre_filter differs" in other_code.rebuild_reason
    assert not (root / "processed" / "pre_filter.pt").exists()


def test_descriptions_separate_what_differs_and_match_what_does_not():
    def make(k):
        return lambda d: d.x * k

    assert describe(None) == "None"
    assert describe(make(2)) == describe(make(2))  # recreated: same code, same closure
    assert describe(make(2)) != describe(make(3))
    assert describe(lambda d: d) != describe(lambda d: d.clone())
    assert describe(Shift(1.0)) == "Shift(dz=1.0)"

    class NoRepr:
        def __init__(self, a):
            self.a = a

        def __call__(self, d):
            return d

    assert describe(NoRepr(1)) == describe(NoRepr(1)) != describe(NoRepr(2))
    assert "0x" not in describe(NoRepr(1)) and "a" in describe(NoRepr(1))
