"""Everything that reads or writes files, above the model and below its users.

- :mod:`pyg_schnet.io.model_file`: ``model.pt`` / ``checkpoint.pt`` (weights-only, checksummed);
- :mod:`pyg_schnet.io.units`: unit names through :mod:`ase.units`, a model's units;
- :mod:`pyg_schnet.io.files`: atomic writes, JSON results, removal of dead writers' temporaries;
- :mod:`pyg_schnet.io.records`: sha256 of files and the record ``results.json`` keeps of a raw file;
- :mod:`pyg_schnet.io.plotting`: matplotlib on Agg, atomic PNG writes;
- :mod:`pyg_schnet.io.devices`: the default device and its description;
- :mod:`pyg_schnet.io.export`: a model's energy and forces as a ``.pt2`` / TorchScript file that plain torch runs.
"""
