"""Tests of csbridge as it ships and runs: subprocesses, the command line, packaging, the
wheel in a fresh virtual environment, and the soak runs."""
