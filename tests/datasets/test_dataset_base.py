"""The base class: raw files first, offline errors, verified downloads, atomic writes, collation."""

from __future__ import annotations

import io
import os
import urllib.request

import pytest
import torch
from torch_geometric.data import InMemoryDataset

from pyg_schnet.datasets import QM9, AtomsTable, DownloadVerificationError, RawFilesMissingError
from pyg_schnet.datasets._io import atomic_path, atomic_torch_save, remove_stale_temporaries
from pyg_schnet.datasets.base import AtomsDataset, fetch_url

QM9_URLS = {
    "dsgdb9nsd.xyz.tar.bz2": "https://ndownloader.figshare.com/files/3195389",
    "atomref.txt": "https://ndownloader.figshare.com/files/3195395",
    "uncharacterized.txt": "https://ndownloader.figshare.com/files/3195404",
}


def test_offline_error_lists_each_missing_file_with_url_and_place(tmp_path, offline):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "atomref.txt").write_text("present\n")
    with pytest.raises(RawFilesMissingError) as info:
        QM9(tmp_path)
    message = str(info.value)
    assert "2 raw file(s) missing" in message
    for name in ("dsgdb9nsd.xyz.tar.bz2", "uncharacterized.txt"):
        assert str(tmp_path / "raw" / name) in message and QM9_URLS[name] in message
    assert QM9_URLS["atomref.txt"] not in message  # present files are not listed
    assert "Temporary failure in name resolution" in message
    assert offline == [QM9_URLS["dsgdb9nsd.xyz.tar.bz2"]]  # gave up at the first unreachable URL


def test_offline_environment_variable_never_touches_the_network(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("PYG_SCHNET_OFFLINE", "1")
    with pytest.raises(RawFilesMissingError, match="Downloads are disabled") as info:
        QM9(tmp_path)
    for name, url in QM9_URLS.items():
        assert str(tmp_path / "raw" / name) in str(info.value) and url in str(info.value)
    assert no_network == []


def test_raw_files_present_means_no_download(qm9_builder, tmp_path, monkeypatch):
    def forbidden(self):
        raise AssertionError("download() called although every raw file exists")

    monkeypatch.setattr(AtomsDataset, "download", forbidden)
    assert len(QM9(qm9_builder.write_root(tmp_path / "qm9"))) == 19


def test_qm9_download_is_verified(tmp_path, qm9_builder, serve, temporaries, qm9_text_files):
    # files with the published layout but not the published counts: the archive must be refused
    src = qm9_builder.write_root(tmp_path / "src")
    fetched = serve({url: src / "raw" / name for name, url in QM9_URLS.items()})
    root = tmp_path / "root"
    with pytest.raises(DownloadVerificationError, match=r"holds 20 files, the published archive holds 133885"):
        QM9(root)
    assert fetched == [QM9_URLS["dsgdb9nsd.xyz.tar.bz2"]]
    assert not (root / "raw" / "dsgdb9nsd.xyz.tar.bz2").exists() and temporaries(root) == []


def test_downloaded_list_with_wrong_count_is_refused(tmp_path, qm9_builder, serve):
    src = qm9_builder.write_root(tmp_path / "src")
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    os.link(src / "raw" / "dsgdb9nsd.xyz.tar.bz2", root / "raw" / "dsgdb9nsd.xyz.tar.bz2")
    serve(
        {
            QM9_URLS["atomref.txt"]: src / "raw" / "atomref.txt",
            QM9_URLS["uncharacterized.txt"]: src / "raw" / "uncharacterized.txt",
        }
    )
    with pytest.raises(DownloadVerificationError, match=r"lists 4 ids, the published file 3054"):
        QM9(root)
    assert (root / "raw" / "atomref.txt").exists()  # verified and kept
    assert not (root / "raw" / "uncharacterized.txt").exists()


def test_fetch_url_progress_and_truncation(tmp_path, monkeypatch):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3000))
    target = tmp_path / "copy.bin"
    assert fetch_url(source.as_uri(), target) == 3000  # file:// URLs carry a Content-Length
    assert target.read_bytes() == source.read_bytes()

    class ShortResponse(io.BytesIO):
        headers = {"Content-Length": "5000"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: ShortResponse(b"x" * 1200))
    with pytest.raises(DownloadVerificationError, match="stopped after 1200 of 5000 bytes"):
        fetch_url("http://example.invalid/file", tmp_path / "short.bin")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.pt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    atomic_torch_save({"a": torch.arange(3)}, target)
    assert torch.equal(torch.load(target)["a"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def test_stale_temporaries_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".data.pt.tmp-{os.getpid()}"
    dead = tmp_path / ".data.pt.tmp-999999999"
    live = tmp_path / f".data.pt.tmp-{os.getppid()}"
    for p in (mine, dead, live):
        p.write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([mine, dead]) and live.exists()


def test_atoms_table_collation_equals_pyg_collate():
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([3, 1, 5, 2])
    table = AtomsTable(
        num_atoms=counts,
        atom_fields={"z": torch.randint(1, 10, (11,), generator=gen), "pos": torch.randn(11, 3, generator=gen)},
        graph_fields={
            "energy": torch.randn(4, generator=gen, dtype=torch.float64),
            "y": torch.randn(4, 15, generator=gen, dtype=torch.float64),
        },
    )
    data, slices = table.collated()
    ref_data, ref_slices = InMemoryDataset.collate([table.get(g) for g in range(4)])
    assert slices.keys() == ref_slices.keys()
    for key in slices:
        assert torch.equal(slices[key], ref_slices[key]), key
        assert torch.equal(data[key], ref_data[key]), key
    reordered = table.select([2, 0, 3])
    for new, old in enumerate([2, 0, 3]):
        for key in ("z", "pos", "energy", "y"):
            assert torch.equal(reordered.get(new)[key], table.get(old)[key])
    with pytest.raises(ValueError, match="atom field 'z' has 10 rows, expected 11"):
        AtomsTable(num_atoms=counts, atom_fields={"z": torch.zeros(10)})
