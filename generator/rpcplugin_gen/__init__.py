"""rpcplugin-gen: the code generator (CLI and protoc plugin)."""
