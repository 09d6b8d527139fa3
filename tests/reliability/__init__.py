"""The audit of bad inputs: every case in ``cases_*.py`` runs in CI and docs/reliability.md is its table."""
