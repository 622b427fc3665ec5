"""Benchmarks: run from the repo root with the project installed (see docs/performance.md)."""
