"""rpcplugin-gen: generate typed go-plugin plugin packages from ``.proto`` files.

The ``rpcplugin-gen`` command is :mod:`rpcplugin_gen.cli`; ``protoc-gen-rpcplugin`` (for protoc
and ``buf generate``) is :mod:`rpcplugin_gen.protoc_plugin`. Both run :mod:`rpcplugin_gen.codegen`.
"""

__version__ = "0.1.0"
