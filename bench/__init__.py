"""Benchmark harness for graphapp and its baselines (``make bench``); see docs/benchmarks.md."""
