"""Rapport's benchmarks: `python -m bench` (or `make bench`) prints a table and writes JSON.

Every figure is a ratio against a baseline measured in the same run on the same
machine, so a busy machine moves both sides and the ratio stays readable. A case
is one module under `bench/cases/`, registered in `bench.cases.CASES`.
"""
