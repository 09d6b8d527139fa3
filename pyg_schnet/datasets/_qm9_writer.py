"""Write molecules in QM9's raw xyz layout and pack them like ``dsgdb9nsd.xyz.tar.bz2``.

Used to build test archives from real records and to time :class:`~pyg_schnet.datasets.QM9`
processing. Only the fields our parser reads carry data: Mulliken charges, frequencies, SMILES
and InChI are written as placeholders in the right places (``0.0``, ``0.0 ...``, ``C C``,
``InChI=1S/ InChI=1S/``), so a written record is structurally a QM9 record but those fields
are not real.

Benchmark (prints molecules/s, atoms/s and MB/s of the uncompressed tar stream)::

    python -m pyg_schnet.datasets._qm9_writer --sample-db ../shared/data/qm9/qm9_sample.db --records 30000
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from ase.data import chemical_symbols

PathLike = Union[str, "os.PathLike[str]"]

#: ``qm9_sample.db`` ``row.data`` keys in the raw file's column order (see its ``_property_unit_dict``).
DB_PROPERTY_KEYS: Tuple[str, ...] = (
    "rotational_constant_A",
    "rotational_constant_B",
    "rotational_constant_C",
    "dipole_moment",
    "isotropic_polarizability",
    "homo",
    "lumo",
    "gap",
    "electronic_spatial_extent",
    "zpve",
    "energy_U0",
    "energy_U",
    "enthalpy_H",
    "free_energy",
    "heat_capacity",
)


def fortran_float(value: float) -> str:
    """``repr(value)`` in Mathematica/Fortran notation, e.g. ``0.0019761204`` -> ``1.9761204*^-3``.

    The decimal digits are those of ``repr``, so parsing it back gives exactly ``value``.
    """
    mantissa, exponent = format(Decimal(repr(float(value))), "e").split("e")
    return f"{mantissa}*^{int(exponent)}"


def format_qm9_xyz(
    gdb_id: int,
    numbers: Sequence[int],
    positions: np.ndarray,
    properties: Sequence[float],
    fortran: bool = False,
    charges: Optional[Sequence[float]] = None,
    frequencies: Optional[Sequence[float]] = None,
) -> str:
    """One molecule in the raw layout; ``fortran=True`` writes every coordinate as ``m*^e``.

    Mulliken ``charges`` and harmonic ``frequencies`` default to zeros (placeholders).
    """
    if len(properties) != 15:
        raise ValueError(f"QM9 records carry 15 properties, got {len(properties)}")
    fmt = fortran_float if fortran else (lambda v: repr(float(v)))
    charges = [0.0] * len(numbers) if charges is None else charges
    frequencies = [0.0] * max(3 * len(numbers) - 6, 1) if frequencies is None else frequencies
    # as in the published files: "gdb <id>", a tab, the tab-separated properties, a trailing tab
    lines = [str(len(numbers)), f"gdb {int(gdb_id)}\t" + "\t".join(repr(float(p)) for p in properties) + "\t"]
    for z, xyz, q in zip(numbers, np.asarray(positions, dtype=np.float64), charges):
        lines.append("\t".join([chemical_symbols[int(z)], fmt(xyz[0]), fmt(xyz[1]), fmt(xyz[2]), repr(float(q))]))
    lines.append("\t".join(repr(float(f)) for f in frequencies))
    lines.append("C\tC")
    lines.append("InChI=1S/\tInChI=1S/")
    return "\n".join(lines) + "\n"


def member_name(gdb_id: int) -> str:
    return f"dsgdb9nsd_{int(gdb_id):06d}.xyz"


def write_qm9_archive(path: PathLike, members: Iterable[Tuple[str, Union[str, bytes]]]) -> int:
    """Write ``(member name, text)`` pairs into a ``.tar.bz2``; return the number of members."""
    count = 0
    with tarfile.open(os.fspath(path), mode="w:bz2") as tar:
        for name, text in members:
            payload = text.encode("ascii") if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
            count += 1
    return count


def sample_db_records(db_path: PathLike) -> List[Tuple[int, List[int], np.ndarray, List[float]]]:
    """``(gdb id, numbers, positions, 15 properties)`` for every row of ``qm9_sample.db``."""
    import ase.db

    out = []
    with ase.db.connect(os.fspath(db_path), type="db", create_indices=False) as db:
        for row in db.select():
            props = [float(np.asarray(row.data[k]).reshape(-1)[0]) for k in DB_PROPERTY_KEYS]
            out.append((int(row.id), [int(z) for z in row.numbers], np.asarray(row.positions), props))
    return out


def benchmark_members(
    sample_db: PathLike, records: int, jitter: bool = True, seed: int = 0
) -> Tuple[List[Tuple[str, str]], int]:
    """``records`` members cycling through the sample's molecules, with ids ``1 .. records``.

    ``jitter=False`` repeats the real records verbatim; bz2 then compresses the stream about
    800-fold and decompresses it far faster than the real archive. ``jitter=True`` moves every
    coordinate by up to 5e-4 Angstrom and writes random Mulliken charges (6 decimals) and
    frequencies (4 decimals), so that the digits are as incompressible as in the published
    archive; use it for timings. Returns the members and their total number of atoms.
    """
    rng = np.random.default_rng(seed)
    templates = sample_db_records(sample_db)
    members = []
    atoms = 0
    for k in range(records):
        _, numbers, positions, properties = templates[k % len(templates)]
        charges = frequencies = None
        if jitter:
            positions = np.round(positions + rng.uniform(-5e-4, 5e-4, positions.shape), 10)
            charges = np.round(rng.uniform(-0.6, 0.6, len(numbers)), 6)
            frequencies = np.round(rng.uniform(50.0, 4000.0, max(3 * len(numbers) - 6, 1)), 4)
        text = format_qm9_xyz(k + 1, numbers, positions, properties, charges=charges, frequencies=frequencies)
        members.append((member_name(k + 1), text))
        atoms += len(numbers)
    return members, atoms


def _benchmark(sample_db: Path, records: int, jitter: bool, workdir: Path) -> None:
    from pyg_schnet.datasets.qm9 import QM9

    members, atoms = benchmark_members(sample_db, records, jitter=jitter)
    tar_bytes = sum(512 + (len(t) + 511) // 512 * 512 for _, t in members)
    raw = workdir / "raw"
    raw.mkdir(parents=True)
    write_qm9_archive(raw / "dsgdb9nsd.xyz.tar.bz2", members)
    compressed = (raw / "dsgdb9nsd.xyz.tar.bz2").stat().st_size
    (raw / "atomref.txt").write_text(
        "\n".join(f"   {s}     0.000000     -1.0      -1.0       -1.0       -1.0       2.981" for s in "HCNOF") + "\n"
    )
    (raw / "uncharacterized.txt").write_text(f"  {records + 1}   C   C   C   1.0\n")
    start = time.perf_counter()
    ds = QM9(str(workdir), log=False)
    seconds = time.perf_counter() - start
    assert len(ds) == records
    print(
        f"{records} records, {atoms} atoms, {tar_bytes / 1e6:.1f} MB tar stream ({compressed / 1e6:.1f} MB bz2, "
        f"jitter={jitter}): {seconds:.2f} s = {records / seconds:,.0f} molecules/s, "
        f"{atoms / seconds:,.0f} atoms/s, {tar_bytes / 1e6 / seconds:.1f} MB/s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-db", type=Path, required=True)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--no-jitter", action="store_true", help="repeat the records verbatim")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        _benchmark(args.sample_db, args.records, not args.no_jitter, Path(tmp))


if __name__ == "__main__":
    main()
