"""A synthetic proto set the size of the notes' benchmark: 40 files in 40 packages, 1,200
messages, 400 RPCs (100 of each call kind), every file importing the previous one's package.

``python -m tests.generator.synth DIR`` writes it (the benchmark and a test use :func:`write`).
"""

from __future__ import annotations

import sys
from pathlib import Path

FILES = 40
MESSAGES_PER_FILE = 30
RPCS_PER_FILE = 10
KINDS = (("", ""), ("", "stream "), ("stream ", ""), ("stream ", "stream "))


def proto_name(index: int) -> str:
    return f"synth/p{index:02d}/v1/service.proto"


def source(index: int) -> str:
    lines = [
        f"// Synthetic file {index}.",
        'syntax = "proto3";',
        f"package synth.p{index:02d}.v1;",
        'import "google/protobuf/timestamp.proto";',
        'import "rpcplugin/protos/rpcplugin_options.proto";',
    ]
    if index:
        lines.append(f'import "{proto_name(index - 1)}";')
    lines.append('option (rpcplugin.options.plugin) = { cookie_key: "SYNTH" cookie_value: "s" };')
    for m in range(MESSAGES_PER_FILE):
        lines += [
            f"// Message {m} of file {index}.",
            f"message M{m} {{",
            "  string id = 1;",
            "  int64 count = 2;",
            "  repeated string tags = 3;",
            "  map<string, int32> scores = 4;",
            "  google.protobuf.Timestamp at = 5;",
            "  optional bool flag = 6;",
            "  oneof choice { string a = 7; int32 b = 8; }",
        ]
        if index and m == 0:
            lines.append(f"  synth.p{index - 1:02d}.v1.M1 previous = 9;")
        lines.append("}")
    lines += [f"// Service {index}.", f"service Service{index:02d} {{"]
    for r in range(RPCS_PER_FILE):
        request, response = KINDS[(index * RPCS_PER_FILE + r) % 4]
        lines += [
            f"  // Call {r}.",
            f"  rpc Call{r}({request}M{r}) returns ({response}M{r + 1});",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(root: Path) -> list[str]:
    """Write the set under ``root``; return the proto names."""
    names = []
    for index in range(FILES):
        path = root / proto_name(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source(index))
        names.append(proto_name(index))
    return names


if __name__ == "__main__":
    print("\n".join(write(Path(sys.argv[1]))))
