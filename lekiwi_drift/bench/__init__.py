"""Benchmarks behind `lekiwi-drift bench NAME` (see lekiwi_drift/cli/bench.py)."""
