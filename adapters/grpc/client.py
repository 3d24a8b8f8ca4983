"""A typed asyncio client for the gRPC API ``energytree.v1.EnergyManager``.

It speaks energytree types on both sides: targets, limits and prices go in as the pydantic
energy types, answers come back as them. Like ``cli``, this is an edge module of the package:
it uses the gRPC adapter's generated code and converters (``adapters.grpc``); the core never
imports it. Errors are translated at the seam: NOT_FOUND raises ``NotFoundError``,
INVALID_ARGUMENT ``RequestError`` (the message names the field), any other status
``ApiError`` with its ``code``.

Usage::

    async with EnergyTreeClient("127.0.0.1:50051", token="s3cret") as client:
        await client.submit_target("evse-1", OptimizerTarget(energy_amount_needed=20))
        async for limits in client.watch_limits():
            ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self, TypeVar

import grpc

from adapters.grpc import convert
from adapters.grpc.convert import PlanPreview, SiteStatus
from adapters.grpc.details import violations_from_metadata
from adapters.grpc.gen.energytree.v1 import energytree_pb2 as pb
from adapters.grpc.gen.energytree.v1 import energytree_pb2_grpc as pb_grpc
from energytree.errors import ConfigError, EnergyTreeError, NotFoundError, RequestError
from energytree.types import (
    EnforcedLimits,
    ExternalLimits,
    OptimizerTarget,
    Powermeter,
    PricePerKwh,
)
from energytree.variables import VariableView

__all__ = ["DEFAULT_SERVER", "ApiError", "EnergyTreeClient", "PlanPreview", "SiteStatus",
           "TargetPlan"]

DEFAULT_SERVER = "127.0.0.1:50051"
# plans of large sites (every EVSE with its whole schedule) exceed gRPC's default 4 MB
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
Expr = str | float
Reply = TypeVar("Reply")


@dataclass(frozen=True)
class TargetPlan:
    """The server's answer to a new target: the plan it caused, and what it promises."""

    plan_id: str
    plan_version: int
    reachable: bool
    expected_energy_kwh: float
    shortfall_kwh: float
    reason: str


class ApiError(EnergyTreeError):
    """The server answered with a gRPC status other than NOT_FOUND/INVALID_ARGUMENT."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@contextlib.contextmanager
def _translate(target: str) -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.NOT_FOUND:
            raise NotFoundError(details) from exc
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            error = RequestError(details)
            error.violations = violations_from_metadata(exc.trailing_metadata())
            raise error from exc
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"cannot reach {target}: {details}"
        raise ApiError(code, details) from exc


def _read_ca(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the CA certificate {path}: {exc.strerror}") from exc


class EnergyTreeClient:
    """One channel to an energytree server; create it inside the event loop that uses it."""

    def __init__(self, target: str = DEFAULT_SERVER, token: str | None = None,
                 tls_ca: Path | None = None, *, timeout_s: float = 10.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if tls_ca is None:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=_read_ca(tls_ca))
            self._channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.EnergyManagerStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, rpc: Callable[..., Awaitable[Reply]], request: object) -> Reply:
        with _translate(self.target):
            return await rpc(request, metadata=self._metadata, timeout=self.timeout_s)

    async def submit_target(self, evse_uuid: str, target: OptimizerTarget) -> TargetPlan:
        """Set the optimizer target of one EVSE; the answer is the plan it caused."""
        message = convert.model_to_message(target, pb.OptimizerTarget())
        answer = await self._call(
            self._stub.SubmitOptimizerTarget,
            pb.SubmitOptimizerTargetRequest(evse_uuid=evse_uuid, target=message))
        return TargetPlan(answer.plan_id, answer.plan_version, answer.reachable,
                          answer.expected_energy_kWh, answer.shortfall_kWh, answer.reason)

    async def site_timezone(self) -> str:
        """The site's IANA time zone (clock times without an offset are in it)."""
        response = await self._call(self._stub.GetStatus, pb.GetStatusRequest())
        return response.timezone or "UTC"

    async def report_measurement(self, evse_uuid: str, meter: Powermeter) -> None:
        """What one EVSE's own meter measures now (see ``EnergyManager.report_measurement``)."""
        message = convert.model_to_message(meter, pb.Powermeter())
        await self._call(self._stub.ReportMeasurement,
                         pb.ReportMeasurementRequest(evse_uuid=evse_uuid, meter=message))

    async def clear_target(self, evse_uuid: str) -> None:
        await self._call(self._stub.ClearOptimizerTarget,
                         pb.ClearOptimizerTargetRequest(evse_uuid=evse_uuid))

    async def set_external_limits(self, source: str, node_uuid: str, limits: ExternalLimits, *,
                                  ttl_s: float | None = None,
                                  failsafe: ExternalLimits | None = None) -> datetime | None:
        """Install or renew the source's limits on a node; returns when they expire (TTL)."""
        request = pb.SetExternalLimitsRequest(source=source, node_uuid=node_uuid, ttl_s=ttl_s)
        convert.model_to_message(limits, request.limits)
        if failsafe is not None:
            convert.model_to_message(failsafe, request.failsafe)
        response = await self._call(self._stub.SetExternalLimits, request)
        if not response.HasField("expires_at"):
            return None
        return convert.timestamp_to_datetime(response.expires_at, "expires_at")

    async def clear_external_limits(self, source: str) -> bool:
        """Remove the source's limits; False if there were none."""
        response = await self._call(self._stub.ClearExternalLimits,
                                    pb.ClearExternalLimitsRequest(source=source))
        return response.cleared

    async def set_prices(self, prices: Sequence[PricePerKwh]) -> None:
        messages = [convert.model_to_message(p, pb.PricePerKwh()) for p in prices]
        await self._call(self._stub.SetPrices, pb.SetPricesRequest(prices=messages))

    async def get_plan(self, targets: Mapping[str, OptimizerTarget | None] | None = None
                       ) -> PlanPreview:
        """What-if: the plan with these targets (None: no target) over the current ones."""
        request = pb.GetPlanRequest()
        for uuid, target in (targets or {}).items():
            item = request.targets.add(evse_uuid=uuid)
            if target is not None:
                convert.model_to_message(target, item.target)
        response = await self._call(self._stub.GetPlan, request)
        return convert.plan_from_proto(response)

    async def get_status(self) -> SiteStatus:
        response = await self._call(self._stub.GetStatus, pb.GetStatusRequest())
        return convert.status_from_proto(response)

    async def watch_limits(self) -> AsyncIterator[list[EnforcedLimits]]:
        """The limits in force now, then every publication, until the caller stops."""
        call = self._stub.WatchEnforcedLimits(pb.WatchEnforcedLimitsRequest(),
                                              metadata=self._metadata)
        try:
            with _translate(self.target):
                async for response in call:
                    yield convert.enforced_limits_from_proto(response.limits)
        finally:
            call.cancel()

    async def set_variables(self, items: Sequence[tuple[str, Expr]], *, clear: bool = False,
                            tmp: bool = False) -> list[str]:
        """Set variables to numbers or formulas, all or none; returns the changed names."""
        request = pb.SetVariablesRequest(clear=clear, tmp=tmp)
        for name, expr in items:
            if isinstance(expr, str):
                request.vars.add(name=name, formula=expr)
            else:
                request.vars.add(name=name, number=float(expr))
        response = await self._call(self._stub.SetVariables, request)
        return list(response.changed)

    async def get_variables(self) -> list[VariableView]:
        response = await self._call(self._stub.GetVariables, pb.GetVariablesRequest())
        return convert.variable_views_from_proto(response.vars)
