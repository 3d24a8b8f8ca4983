"""The gRPC API ``energytree.v1.EnergyManager`` (proto/energytree/v1/energytree.proto).

The generated modules live in ``adapters.grpc.gen.energytree.v1`` (scripts/gen_protos.py
writes them there so they do not shadow our ``energytree`` package); ``convert`` maps their
messages to energytree types and ``service`` serves them. The Python client is
``adapters.grpc.client``.
"""

from __future__ import annotations

from adapters.grpc.service import EnergyManagerServicer, GrpcServer, GrpcServerConfig

__all__ = ["EnergyManagerServicer", "GrpcServer", "GrpcServerConfig"]
