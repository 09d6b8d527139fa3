"""The embedded demo: the paper's SchNet trained on ethanol at 500 K in a few CPU minutes.

``pyg-schnet demo`` trains on :data:`DEMO_DATA`, 1,000 frames of a Langevin molecular
dynamics trajectory of ethanol at 500 K whose energies and forces come from GFN2-xTB (a
semi-empirical tight-binding method, **not** the DFT of MD17), stored in MD17's npz layout
(``R``, ``z``, ``E`` in kcal/mol, ``F`` in kcal/mol/Angstrom). ``benchmarks/make_demo_data.py`` made
the file. The demo runs the same code as ``benchmarks/md17.py``; with ``--raw-file`` pointing at a
real MD17 file it is the real Table 2 benchmark.
"""

from pathlib import Path

#: The demo trajectory (MD17 layout, GFN2-xTB labels).
DEMO_DATA = Path(__file__).resolve().parent / "ethanol_xtb_500K.npz"

__all__ = ["DEMO_DATA"]
