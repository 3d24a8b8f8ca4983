"""The committed gRPC code is what scripts/gen_protos.py makes from proto/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "adapters" / "grpc" / "gen"
SCRIPT = ROOT / "scripts" / "gen_protos.py"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev dependency) is not installed")


def generated(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.name.endswith(SUFFIXES)
    }


def test_generated_code_is_up_to_date(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    fresh, committed = generated(tmp_path), generated(COMMITTED)
    assert fresh, "the generator wrote nothing"
    assert sorted(fresh) == sorted(committed), "generated files differ in name"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"run scripts/gen_protos.py: {stale} are out of date"


def test_generated_code_does_not_shadow_the_core_package():
    import energytree
    from adapters.grpc.gen.energytree.v1 import energytree_pb2, energytree_pb2_grpc

    assert Path(energytree.__file__).parent == ROOT / "energytree"
    imported = energytree_pb2_grpc.energytree_dot_v1_dot_energytree__pb2
    assert imported is energytree_pb2
    assert energytree_pb2.OptimizerTarget.__module__ == energytree_pb2.__name__
    # the wire keeps the proto's own names
    assert energytree_pb2.DESCRIPTOR.name == "energytree/v1/energytree.proto"
    assert energytree_pb2.DESCRIPTOR.package == "energytree.v1"
    assert "EnergyManager" in energytree_pb2.DESCRIPTOR.services_by_name
