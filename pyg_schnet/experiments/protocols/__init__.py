"""The paper's experiments as functions: :mod:`.qm9` (Table 1), :mod:`.md17` (Table 2), :mod:`.iso17`
(Table 3). Each has ``build_parser()``, ``run(args)`` and ``main(argv)``; ``benchmarks/*.py`` call ``main``."""
