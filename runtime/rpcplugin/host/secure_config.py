"""SecureConfig: check a plugin executable's SHA-256 before running it (docs/protocol.md §8.5, H09).

The file checked is the one actually executed (``argv[0]`` resolved on ``PATH``), as go-plugin
checks ``cmd.Path``. For ``python plugin.py`` that is the interpreter, so ship plugins as one
executable file (see docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil

from ..errors import ChecksumError, ConfigError


def executable_path(program: str, path: str | None = None) -> str:
    """The file ``program`` resolves to, as exec would find it."""
    if os.sep in program:
        return os.path.abspath(program)
    found = shutil.which(program, path=path)
    if found is None:
        raise ConfigError("plugin command", program, "an executable on PATH or a path to one")
    return found


def sha256_file(path: str) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(program: str, expected_sha256: str, path: str | None = None) -> str:
    """Raise :class:`ChecksumError` unless ``program``'s SHA-256 is ``expected_sha256`` (hex).

    Returns the resolved executable path, so the caller runs exactly the file it checked.
    """
    expected = expected_sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ConfigError("checksum", expected_sha256, "a SHA-256 as 64 hex digits")
    resolved = executable_path(program, path)
    actual = sha256_file(resolved)
    if not hmac.compare_digest(actual, expected):
        raise ChecksumError(
            f"checksum mismatch for plugin {resolved}: expected SHA-256 {expected}, "
            f"the file has {actual}; refusing to run it"
        )
    return resolved
