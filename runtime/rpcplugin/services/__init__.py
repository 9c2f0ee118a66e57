"""go-plugin's own gRPC services, both ends of each: health, controller (Shutdown), stdio and the
broker. Used by ``plugin`` (serving them) and ``host`` (calling them). May import the core
modules and ``_wire``.
"""
