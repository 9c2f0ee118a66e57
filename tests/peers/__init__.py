"""Test peers written in Python (the conformance plugin); the Go ones live in ``tests/go``."""
