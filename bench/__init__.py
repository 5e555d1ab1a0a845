"""Rapport's benchmarks: `python -m bench` (or `make bench`) prints a table and writes JSON.

Every figure is a ratio against a baseline measured in the same run on the same
machine, so a busy machine moves both sides and the ratio stays readable. A case
is one module under `bench/cases/`, registered in `bench.cases.CASES`.
"""

import os

# The services under measurement use the published development token and secrets,
# which they refuse unless told they run in development.
os.environ.setdefault("RAPPORT_ENV", "development")
