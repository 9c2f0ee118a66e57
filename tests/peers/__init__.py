"""Test peers and harness written in Python (plugins, the raw-protocol harness); the Go peers
live in ``tests/go``."""
