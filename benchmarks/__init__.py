"""Benchmarks: `make bench` runs each module's `run()` and prints its figures (not timed tests)."""
