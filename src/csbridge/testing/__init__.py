"""Helpers for tests and benchmarks that need a real broker."""
