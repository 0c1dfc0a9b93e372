"""Helpers of benchmarks/reproduce.py: command line, plan, on-disk state, execution, measurements,
report."""
