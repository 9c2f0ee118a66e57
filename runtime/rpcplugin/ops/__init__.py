"""Operating plugins in production: call interception, per-client auth, rate limits, metrics
(with an optional OpenTelemetry exporter), and operator certificates. May import the core
modules and ``_wire``.
"""
