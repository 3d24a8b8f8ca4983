"""Regenerate the Python code of proto/energytree/v1/*.proto into adapters/grpc/gen.

    .venv/bin/python scripts/gen_protos.py            # rewrite the committed files
    .venv/bin/python scripts/gen_protos.py --out DIR  # generate elsewhere (the drift test)

The generator is pinned: grpcio-tools 1.81.1 makes protobuf 6.33 gencode, which is what the
runtime pinned by ortools accepts (newer grpcio-tools make 7.x gencode that fails to import).

protoc names generated modules after the proto path relative to ``-I``, so
``energytree/v1/energytree.proto`` becomes the module ``energytree.v1.energytree_pb2``, and
that would be our core package. The proto keeps its path (the wire names stay
``energytree/v1/energytree.proto`` and ``energytree.v1.EnergyManager``); the modules are
written under ``adapters/grpc/gen/``, and their imports of each other and the module name
of the message classes are rewritten to ``adapters.grpc.gen.energytree.v1``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "adapters" / "grpc" / "gen"
PACKAGE = "adapters.grpc.gen"
GRPCIO_TOOLS = "1.81.1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
# imports of each other, and the module name the message classes get as ``__module__``
OWN_MODULES = re.compile(r"^(from|import) (energytree\.v1)\b"
                         r"|(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')(energytree\.v1\.)",
                         re.MULTILINE)


def protos() -> list[Path]:
    """The .proto files, relative to ``proto/``."""
    return sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))


def generated(out: Path) -> list[Path]:
    """The generated files below ``out``, relative to it."""
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.name.endswith(SUFFIXES))


def _check_version() -> None:
    found = importlib.metadata.version("grpcio-tools")
    if found != GRPCIO_TOOLS:
        raise SystemExit(f"grpcio-tools {found} is installed; generate with {GRPCIO_TOOLS}")


def _protoc(out: Path) -> None:
    from grpc_tools import protoc

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    for proto in protos():
        rc = protoc.main([
            "protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", str(proto),
        ])
        if rc != 0:
            raise SystemExit(f"protoc failed on {proto}")


def _in_package(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)} {PACKAGE}.{match.group(2)}"
    return f"{match.group(3)}{PACKAGE}.{match.group(4)}"


def _rewrite_imports(out: Path) -> None:
    """Place the generated modules in ``adapters.grpc.gen`` (imports and module names)."""
    for name in generated(out):
        path = out / name
        text = path.read_text(encoding="utf-8")
        path.write_text(OWN_MODULES.sub(_in_package, text), encoding="utf-8")


def generate(out: Path) -> list[Path]:
    """Generate every proto into ``out``; returns the files written, relative to ``out``."""
    _check_version()
    with tempfile.TemporaryDirectory() as tmp:
        _protoc(Path(tmp))
        _rewrite_imports(Path(tmp))
        files = generated(Path(tmp))
        for name in files:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes((Path(tmp) / name).read_bytes())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output root (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in generate(args.out):
        sys.stdout.write(f"{args.out / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
