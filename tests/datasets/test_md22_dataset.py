"""MD22 from files in the published npz layout (MD17's: ``R``, ``z``, ``E``, ``F`` plus ``name``, ``theory``,
``e_unit``, ``r_unit``).

No MD22 file is available offline: the files here are the real 1,500-frame MD17 ethanol excerpt
(``../shared/data/md17/md17_ethanol.npz``) written under MD22 file names with MD22's scalar strings;
the class reads the layout, not the chemistry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_schnet.datasets import MD22, DownloadVerificationError, RawFileError, RawFilesMissingError
from pyg_schnet.datasets.md22 import MD22_FILES, canonical_md22_molecule

SEVEN = ["Ac-Ala3-NHMe", "DHA", "stachyose", "AT-AT", "AT-AT-CG-CG", "buckyball-catcher", "double-walled_nanotube"]


@pytest.fixture(scope="module")
def ethanol_npz(shared_data: Path):
    with np.load(shared_data / "md17" / "md17_ethanol.npz") as f:
        return {k: f[k] for k in f.files}


def md22_arrays(ethanol_npz, name: str = "Ac-Ala3-NHMe"):
    """The ethanol frames under MD22's keys and scalar strings."""
    return {
        "R": ethanol_npz["R"],
        "z": ethanol_npz["z"],
        "E": ethanol_npz["E"],
        "F": ethanol_npz["F"],
        "name": np.array(name),
        "theory": np.array("PBE+MBD"),
        "e_unit": np.array("kcal/mol"),
        "r_unit": np.array("Ang"),
    }


def write_md22(root: Path, molecule: str, arrays) -> Path:
    path = root / "raw" / MD22_FILES[molecule][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_md22_file_loads_in_md17_units(tmp_path, ethanol_npz, no_network):
    write_md22(tmp_path, "Ac-Ala3-NHMe", md22_arrays(ethanol_npz))
    ds = MD22(tmp_path, "Ac-Ala3-NHMe")
    assert len(ds) == 1500 and ds.energy_unit == "kcal/mol" and ds.force_unit == "kcal/mol/Angstrom"
    assert repr(ds) == "MD22(1500, molecule='Ac-Ala3-NHMe')"
    np.testing.assert_array_equal(ds._data.energy.numpy(), ethanol_npz["E"][:, 0])
    assert ds[7].energy.dtype == torch.float64 and ds[7].z.tolist() == ethanol_npz["z"].tolist()
    torch.testing.assert_close(ds[1234].pos, torch.from_numpy(ethanol_npz["R"][1234]).float(), rtol=0, atol=0)
    torch.testing.assert_close(ds[1234].force, torch.from_numpy(ethanol_npz["F"][1234]).float(), rtol=0, atol=0)
    assert ds.build_record["dataset"] == "MD22" and ds.summary["molecule"] == "Ac-Ala3-NHMe"


def test_each_of_the_seven_reads_its_published_file_name(tmp_path, ethanol_npz, no_network):
    assert list(MD22_FILES) == SEVEN
    for molecule in SEVEN:
        write_md22(tmp_path, molecule, md22_arrays(ethanol_npz, molecule))
        assert len(MD22(tmp_path, molecule)) == 1500
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        [
            "md22_Ac-Ala3-NHMe.npz",
            "md22_DHA.npz",
            "md22_stachyose.npz",
            "md22_AT-AT.npz",
            "md22_AT-AT-CG-CG.npz",
            "md22_buckyball-catcher.npz",
            "md22_double-walled_nanotube.npz",
        ]
    )


def test_names_are_forgiving_and_an_unknown_one_lists_the_seven(tmp_path):
    assert canonical_md22_molecule("ac_ala3_nhme") == "Ac-Ala3-NHMe"
    assert canonical_md22_molecule("Double walled nanotube") == "double-walled_nanotube"
    assert canonical_md22_molecule("dw-nanotube") == "double-walled_nanotube"
    assert canonical_md22_molecule("at-at-cg-cg") == "AT-AT-CG-CG"
    with pytest.raises(ValueError, match=r"unknown MD22 molecule 'caffeine'; choose from") as info:
        MD22(tmp_path, "caffeine")
    assert all(name in str(info.value) for name in SEVEN)
    assert not (tmp_path / "raw").exists()


def test_missing_file_names_its_url(tmp_path, offline):
    with pytest.raises(RawFilesMissingError, match=r"md22_buckyball-catcher\.npz"):
        MD22(tmp_path, "buckyball-catcher")
    assert offline == ["http://www.quantum-machine.org/gdml/repo/datasets/md22_buckyball-catcher.npz"]


def test_a_file_stating_other_units_is_refused(tmp_path, ethanol_npz):
    arrays = md22_arrays(ethanol_npz)
    arrays["e_unit"] = np.array("eV")
    path = write_md22(tmp_path, "DHA", arrays)
    with pytest.raises(RawFileError, match=r"md22_DHA\.npz: key 'e_unit' says 'eV'; expected 'kcal/mol'") as info:
        MD22(tmp_path, "DHA")
    assert str(path) in str(info.value)
    assert list((tmp_path / "processed").glob("*.pt")) == []


def test_download_is_checked_against_the_published_frame_count(tmp_path, ethanol_npz, serve, temporaries, monkeypatch):
    import pyg_schnet.datasets.md22 as md22_module

    source = write_md22(tmp_path / "src", "stachyose", md22_arrays(ethanol_npz, "stachyose"))
    url = "http://www.quantum-machine.org/gdml/repo/datasets/md22_stachyose.npz"
    root = tmp_path / "data"
    fetched = serve({url: source})
    with pytest.raises(DownloadVerificationError, match=r"has 1500 frames, the published file 27272"):
        MD22(root, "stachyose")
    assert fetched == [url] and not (root / "raw" / "md22_stachyose.npz").exists()
    assert temporaries(root) == []
    monkeypatch.setitem(md22_module.MD22_FILES, "stachyose", ("md22_stachyose.npz", 1500))
    assert len(MD22(root, "stachyose")) == 1500 and fetched == [url, url]
