"""MD17 from the published npz layout: the real ethanol excerpt, rMD17, downloads, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import MD17, DownloadVerificationError, RawFileError, RawFilesMissingError


@pytest.fixture
def ethanol_root(tmp_path: Path, shared_data: Path) -> Path:
    raw = tmp_path / "md17" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared_data / "md17" / "md17_ethanol.npz", raw / "md17_ethanol.npz")
    return tmp_path / "md17"


@pytest.fixture(scope="module")
def ethanol_npz(shared_data: Path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: f[k] for k in f.files}


def write_npz(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_ethanol_shapes_dtypes_and_units(ethanol_root, ethanol_npz, no_network):
    ds = MD17(ethanol_root, "ethanol")
    assert len(ds) == 1500 and ds.energy_unit == "kcal/mol" and ds.force_unit == "kcal/mol/Angstrom"
    data = ds[0]
    assert data.z.dtype == torch.long and data.z.tolist() == ethanol_npz["z"].tolist()
    assert data.pos.shape == (9, 3) and data.pos.dtype == torch.float32
    assert data.energy.shape == (1,) and data.energy.dtype == torch.float64
    assert data.force.shape == (9, 3) and data.force.dtype == torch.float32
    energy = ds._data.energy
    np.testing.assert_array_equal(energy.numpy(), ethanol_npz["E"][:, 0])  # float64, no rounding
    assert energy.mean().item() == pytest.approx(-97196, abs=5)
    assert energy.std().item() == pytest.approx(4.3, abs=0.3)
    assert ds._data.force.abs().mean().item() == pytest.approx(19.6, abs=0.3)
    torch.testing.assert_close(ds[1234].pos, torch.from_numpy(ethanol_npz["R"][1234]).float(), rtol=0, atol=0)
    torch.testing.assert_close(ds[1234].force, torch.from_numpy(ethanol_npz["F"][1234]).float(), rtol=0, atol=0)


def test_paper_split_on_the_excerpt(ethanol_root):
    ds = MD17(ethanol_root, "ethanol")
    with pytest.raises(ValueError, match="n_train=1000 plus n_val=1000 .* 1500"):
        ds.random_split(1000)
    split = ds.random_split(1000, n_val=250, seed=3)
    assert split.sizes() == (1000, 250, 250)
    assert torch.equal(torch.sort(torch.cat(split)).values, torch.arange(1500))
    assert torch.equal(split.train, ds.random_split(1000, n_val=250, seed=3).train)


def test_molecule_names_map_to_published_files(tmp_path, offline):
    with pytest.raises(RawFilesMissingError) as info:
        MD17(tmp_path, "salicylic acid")
    assert "md17_salicylic.npz" in str(info.value)
    assert offline == ["http://www.quantum-machine.org/gdml/data/npz/md17_salicylic.npz"]
    with pytest.raises(RawFilesMissingError, match="md17_benzene2017.npz"):
        MD17(tmp_path, "benzene")
    with pytest.raises(ValueError, match="unknown MD17 molecule 'caffeine'"):
        MD17(tmp_path, "caffeine")


def test_revised_md17_layout(tmp_path, ethanol_npz, no_network):
    root = tmp_path / "r"
    write_npz(
        root / "raw" / "rmd17" / "npz_data" / "rmd17_ethanol.npz",
        {
            "nuclear_charges": ethanol_npz["z"].astype(np.uint8),
            "coords": ethanol_npz["R"],
            "energies": ethanol_npz["E"][:, 0],
            "forces": ethanol_npz["F"],
            "old_indices": np.arange(1500),
            "old_energies": ethanol_npz["E"][:, 0],
            "old_forces": ethanol_npz["F"],
        },
    )
    ds = MD17(root, "revised ethanol")
    assert len(ds) == 1500 and ds.revised and "revised ethanol" in repr(ds)
    np.testing.assert_array_equal(ds._data.energy.numpy(), ethanol_npz["E"][:, 0])
    assert ds[5].z.dtype == torch.long and ds[5].z.tolist() == ethanol_npz["z"].tolist()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("F"), r"missing key\(s\) \['F'\]; the file has"),
        (lambda a: a.update(F=a["F"][:, :8]), r"key 'F' has shape \(1500, 8, 3\), expected \(1500, 9, 3\)"),
        (lambda a: a.update(R=a["R"][:, :, :2]), r"key 'R' has shape \(1500, 9, 2\), expected \(M, 9, 3\)"),
        (lambda a: a.update(E=a["E"][:-1]), r"key 'E' has shape \(1499, 1\), expected \(1500,\) or \(1500, 1\)"),
        (lambda a: a.update(z=a["z"].astype(np.float64)), r"key 'z' must be a non-empty 1-D integer array"),
        (lambda a: a["E"].__setitem__((17, 0), np.nan), r"md17_ethanol\.npz: frame 17: non-finite key 'E' \(nan\)"),
        (lambda a: a.update(e_unit=np.array("eV")), r"key 'e_unit' says 'eV'; expected 'kcal/mol'"),
        (lambda a: a.update(R=a["R"][:0], E=a["E"][:0], F=a["F"][:0]), r"key 'R' holds no frames"),
    ],
)
def test_bad_npz_files_name_file_and_key(tmp_path, ethanol_npz, change, message):
    arrays = {k: np.array(v, copy=True) for k, v in ethanol_npz.items()}
    change(arrays)
    root = tmp_path / "bad"
    path = write_npz(root / "raw" / "md17_ethanol.npz", arrays)
    with pytest.raises(RawFileError, match=message) as info:
        MD17(root, "ethanol")
    assert str(path) in str(info.value)
    assert list((root / "processed").glob("*.pt")) == []


def test_corrupt_npz(tmp_path, shared_data):
    raw = tmp_path / "raw"
    raw.mkdir()
    payload = (shared_data / "md17" / "md17_ethanol.npz").read_bytes()
    (raw / "md17_ethanol.npz").write_bytes(payload[: len(payload) // 3])
    with pytest.raises(RawFileError, match=r"md17_ethanol\.npz: not a readable npz file"):
        MD17(tmp_path, "ethanol")


def test_download_is_verified_and_a_bad_download_discarded(tmp_path, shared_data, serve, temporaries):
    url = "http://www.quantum-machine.org/gdml/data/npz/md17_ethanol.npz"
    fetched = serve({url: shared_data / "md17" / "md17_ethanol.npz"})
    # the excerpt has 1,500 frames; the published file has 555,092, so verification must refuse it
    with pytest.raises(DownloadVerificationError, match=r"1500 frames, the published file 555092"):
        MD17(tmp_path, "ethanol")
    assert fetched == [url]
    assert not (tmp_path / "raw" / "md17_ethanol.npz").exists()
    assert temporaries(tmp_path) == []


def test_download_then_process(tmp_path, shared_data, serve, monkeypatch):
    import pyg_schnet.datasets.md17 as md17_module

    monkeypatch.setitem(md17_module.MD17_FILES, "ethanol", ("md17_ethanol.npz", 1500))
    url = "http://www.quantum-machine.org/gdml/data/npz/md17_ethanol.npz"
    fetched = serve({url: shared_data / "md17" / "md17_ethanol.npz"})
    ds = MD17(tmp_path, "ethanol")
    assert len(ds) == 1500 and fetched == [url]
    assert (tmp_path / "raw" / "md17_ethanol.npz").read_bytes() == (
        shared_data / "md17" / "md17_ethanol.npz"
    ).read_bytes()
    MD17(tmp_path, "ethanol")
    assert fetched == [url]  # the second construction used the files on disk
