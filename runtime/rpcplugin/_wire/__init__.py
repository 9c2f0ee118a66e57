"""Plumbing under both sides: endpoints and listeners, AutoMTLS certificates, the TLS plan
(grpcio's TLS or the OpenSSL relay), and dialling. Private: its names are re-exported at the top
level where they are public (``TLSFiles``). May import the core modules only.
"""
