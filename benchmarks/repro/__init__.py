"""Helpers of benchmarks/reproduce.py: plan, on-disk state, execution, measurements, report."""
