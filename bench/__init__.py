"""Benchmarks of drivesim: run each as ``python -m bench.<name>`` from the repository root."""
