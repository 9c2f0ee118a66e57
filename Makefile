# Two commands are all the set-up there is on a fresh machine:
#   make demo   generate the calculator plugin, launch it from a Python host with AutoMTLS, call it
#   make test   lint, type-check and run the whole test suite (what CI runs)
# Both install what they need first (Debian packages for the Go peers, a .venv for Python).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
GO_PKGS := golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev \
           golang-github-golang-protobuf-1-5-dev protobuf-compiler protoc-gen-go protoc-gen-go-grpc

.PHONY: setup go-peers demo test lint typecheck bench protos clean soak

setup: $(STAMP) go-peers

# Both distributions, editable: the runtime (runtime/pyproject.toml, a plain .pth path entry that
# mypy and pyright see) and the generator (pyproject.toml) with the contributor tools.
$(STAMP): pyproject.toml runtime/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./runtime -e '.[dev]'
	touch $@

# Go 1.19 and go-plugin 1.0.1 from Debian: the real peers the tests build against.
go-peers:
	@if command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/hashicorp/go-plugin ] \
	    && command -v protoc-gen-go-grpc >/dev/null; then :; else \
	  echo "installing Debian packages for the Go peers"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GO_PKGS) >/dev/null; fi

demo: $(STAMP)
	$(BIN)/python examples/calculator/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check runtime generator tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy runtime/rpcplugin generator/rpcplugin_gen

test: setup lint typecheck
	$(BIN)/python -m pytest -q

# The runtime's own protos (go-plugin internals, our options); generated files are committed.
protos: $(STAMP)
	cd runtime && ../$(BIN)/python -m grpc_tools.protoc -I . --python_out=. \
	  --plugin=protoc-gen-mypy=../$(BIN)/protoc-gen-mypy --mypy_out=. rpcplugin/protos/*.proto

bench: $(STAMP)
	$(BIN)/python -m bench

# Reliability soak (not in CI; ~11 min): tests/reliability at soak scale, one summary line last.
soak: setup
	$(BIN)/python -m tests.reliability.soak

clean:
	rm -rf $(VENV) build runtime/build tests/go/bin demo-out
