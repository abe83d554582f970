"""Measured figures, as commands that print JSON: `python -m benchmarks NAME --json`."""
