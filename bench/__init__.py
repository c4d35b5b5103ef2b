"""Benchmarks: `python -m bench [name ...]` runs the named modules (all by default) and prints figures."""
