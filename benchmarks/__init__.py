"""Benchmark helpers that ship with the repository (not the package): see run.sh."""
