"""The gRPC service ``energytree.v1.EnergyManager`` on grpc.aio (docs/architecture.md).

One method per RPC, named as in the proto; each turns its request into a call on the live
``EnergyManager`` or the ``VariableStore`` and the answer back into messages
(``adapters.grpc.convert``). Errors become gRPC status codes in one place, ``_status_of``:
``NotFoundError`` → NOT_FOUND, ``RequestError``/``FormulaError`` → INVALID_ARGUMENT (the
message names the field), anything else → INTERNAL with a generic message (logged here).
The standard health service and server reflection run beside it. TLS is optional.

Roles (``RoleAuth``): callers show ``authorization: Bearer <token>`` metadata. The site's
``token`` is an ordinary client's credential (read everything, set targets and prices); the
grid operator's ``operator_token`` is the only one that may also write the operator's
variables and external limits (PERMISSION_DENIED for anyone else). A wrong token is
UNAUTHENTICATED; health checks need none. A server without ``token`` would take writes from
anyone, so it starts only with ``allow_unauthenticated: true`` on a loopback address, and even
then callers without a token are ordinary clients.

Usage::

    server = GrpcServer(GrpcServerConfig(port=50051), manager, store, environment)
    port = await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Self

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters.grpc import convert
from adapters.grpc.details import bad_request_metadata
from adapters.grpc.gen.energytree.v1 import energytree_pb2 as pb
from adapters.grpc.gen.energytree.v1 import energytree_pb2_grpc as pb_grpc
from energytree.audit import AuditLog
from energytree.errors import (
    ConfigError,
    FormulaError,
    NotFoundError,
    PlanningError,
    RequestError,
)
from energytree.formula import FormulaEnvironment
from energytree.manager import EnergyManager
from energytree.targets import accept_target, plan_id, target_answer
from energytree.types import Powermeter
from energytree.variables import Origin, VariableStore

__all__ = ["SERVICE_NAME", "EnergyManagerServicer", "GrpcServer", "GrpcServerConfig"]

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnergyManager"].full_name
HEALTH_PREFIX = f"/{health.SERVICE_NAME}/"
# The grid operator's writes: variables and external limits (two roles: docs/semantics.md).
OPERATOR_RPCS = frozenset(
    f"/{SERVICE_NAME}/{name}"
    for name in ("SetVariables", "SetExternalLimits", "ClearExternalLimits"))
EnvironmentProvider = Callable[[], FormulaEnvironment]


class GrpcServerConfig(BaseModel):
    """Where the gRPC API listens and how callers prove who they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(50051, ge=0, le=65535, description="TCP port; 0 picks a free one")
    tls_cert: Path | None = Field(None, description="Certificate chain (PEM); None: no TLS")
    tls_key: Path | None = Field(None, description="Private key (PEM) for tls_cert")
    token: SecretStr | None = Field(
        None, min_length=1,
        description="An ordinary client's bearer token: read everything, set targets")
    operator_token: SecretStr | None = Field(
        None, min_length=1,
        description="The grid operator's bearer token: also writes variables and external "
        "limits; None: nobody may write them over gRPC")
    allow_unauthenticated: bool = Field(
        False, description="Without token: let callers without a token read and set targets; "
        "only on a loopback host")
    stop_grace_s: float = Field(1.0, ge=0, description="How long stop() lets calls finish [s]")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.token is None and not self.allow_unauthenticated:
            raise ValueError(
                "the gRPC API would accept writes from anyone: set grpc.token (and "
                "grpc.operator_token for the grid operator), or allow_unauthenticated: true "
                "on a loopback host")
        if self.token is None and not _is_loopback(self.host):
            raise ValueError(f"allow_unauthenticated needs a loopback host, not {self.host!r}; "
                             "set grpc.token to listen elsewhere")
        if (self.token is not None and self.operator_token is not None
                and self.token.get_secret_value() == self.operator_token.get_secret_value()):
            raise ValueError("grpc.operator_token must differ from grpc.token")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- errors: the one mapping -----------------------------------------------------------------


def _status_of(exc: Exception, rpc: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, RequestError | FormulaError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.error("internal error in %s", rpc, exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error"


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, rpc: str) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    code, message = _status_of(exc, rpc)
    if code == grpc.StatusCode.INVALID_ARGUMENT and isinstance(exc, RequestError):
        await context.abort(code, message, trailing_metadata=bad_request_metadata(exc, message))
    await context.abort(code, message)


def _rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Map the errors of one RPC method (unary or server-streaming) to gRPC status codes."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except Exception as exc:
                await _abort(context, exc, method.__name__)
        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _abort(context, exc, method.__name__)
    return unary


# ---- the service -----------------------------------------------------------------------------


class EnergyManagerServicer(pb_grpc.EnergyManagerServicer):
    """``energytree.v1.EnergyManager`` on top of a live manager and its variables."""

    def __init__(self, manager: EnergyManager, variables: VariableStore,
                 environment: EnvironmentProvider, audit: AuditLog | None = None) -> None:
        self.manager = manager
        self.variables = variables
        self.environment = environment
        self.audit = audit  # the operator's external limits are §14a evidence too

    @_rpc
    async def SubmitOptimizerTarget(self, request: pb.SubmitOptimizerTargetRequest,
                                    context: Any) -> pb.SubmitOptimizerTargetResponse:
        uuid = convert.required_uuid(request.evse_uuid, "evse_uuid")
        target = convert.target_from_proto(convert.required(request, "target"))
        target = accept_target(target, self.manager.clock.now(), uuid,
                               self.manager.battery_kwh(uuid))
        plan = await self.manager.submit_target(uuid, target)
        if plan is None:  # planning failed; the instant allocator keeps the site safe
            raise PlanningError("no plan could be made with this target; see the server log")
        answer = target_answer(plan, uuid)
        planned_at = self.manager.status().planned_at
        return pb.SubmitOptimizerTargetResponse(
            plan_id=plan_id(planned_at, self.manager.plan_version),
            plan_version=self.manager.plan_version, reachable=answer.reachable,
            expected_energy_kWh=answer.expected_kwh, shortfall_kWh=answer.shortfall_kwh,
            reason=answer.reason,
            planned_at=None if planned_at is None else convert.datetime_to_timestamp(planned_at))

    @_rpc
    async def ClearOptimizerTarget(self, request: pb.ClearOptimizerTargetRequest,
                                   context: Any) -> pb.ClearOptimizerTargetResponse:
        self.manager.set_target(convert.required_uuid(request.evse_uuid, "evse_uuid"), None)
        return pb.ClearOptimizerTargetResponse()

    @_rpc
    async def SetExternalLimits(self, request: pb.SetExternalLimitsRequest,
                                context: Any) -> pb.SetExternalLimitsResponse:
        name = convert.source_name(request.source)
        node = convert.required_uuid(request.node_uuid, "node_uuid")
        limits = convert.external_limits_from_proto(convert.required(request, "limits"),
                                                    "limits")
        failsafe = None
        if request.HasField("failsafe"):
            failsafe = convert.external_limits_from_proto(request.failsafe, "failsafe")
        self.manager.set_external_limits(name, node, limits, convert.ttl_from_proto(request),
                                         failsafe)
        if self.audit is not None:
            self.audit.record(name, self.manager.clock.now(), None, "limits", None,
                              f"external limits on {node} via gRPC", channel="grpc",
                              identity=f"operator {context.peer()}")
        response = pb.SetExternalLimitsResponse()
        expires = self.manager.leases.leases[name].expires_at
        if expires is not None:
            response.expires_at.CopyFrom(convert.datetime_to_timestamp(expires))
        return response

    @_rpc
    async def ClearExternalLimits(self, request: pb.ClearExternalLimitsRequest,
                                  context: Any) -> pb.ClearExternalLimitsResponse:
        name = convert.source_name(request.source)
        cleared = self.manager.clear_external_limits(name)
        if cleared and self.audit is not None:
            self.audit.end(name, self.manager.clock.now())
        return pb.ClearExternalLimitsResponse(cleared=cleared)

    @_rpc
    async def SetPrices(self, request: pb.SetPricesRequest,
                        context: Any) -> pb.SetPricesResponse:
        self.manager.set_prices(convert.prices_from_proto(request.prices))
        return pb.SetPricesResponse()

    @_rpc
    async def GetPlan(self, request: pb.GetPlanRequest, context: Any) -> pb.GetPlanResponse:
        targets = convert.targets_from_proto(request.targets)
        # the planner may take seconds; like the manager's re-plan it runs in a worker thread
        plan = await asyncio.to_thread(self.manager.preview, targets)
        options = self.manager.options
        return convert.plan_to_proto(plan, int(options.tick_s * options.valid_ticks))

    @_rpc
    async def GetStatus(self, request: pb.GetStatusRequest,
                        context: Any) -> pb.GetStatusResponse:
        plan = self.manager.plan
        tree = convert.tree_nodes(plan.problem.tree if plan is not None else None)
        answer = convert.status_to_proto(self.manager.status(), tree)
        answer.timezone = getattr(self.environment().timezone, "key", "UTC")
        answer.plan_version = self.manager.plan_version
        return answer

    @_rpc
    async def WatchEnforcedLimits(self, request: pb.WatchEnforcedLimitsRequest,
                                  context: Any) -> AsyncIterator[pb.WatchEnforcedLimitsResponse]:
        async for limits in self.manager.subscribe():
            yield pb.WatchEnforcedLimitsResponse(limits=convert.enforced_limits_to_proto(limits))

    @_rpc
    async def SetVariables(self, request: pb.SetVariablesRequest,
                           context: Any) -> pb.SetVariablesResponse:
        items = convert.variables_from_proto(request.vars)
        origin = Origin("grpc", f"operator {context.peer()}")  # RoleAuth let only it through
        changed = self.variables.set_many(items, clear=request.clear, persist=not request.tmp,
                                          origin=origin)
        return pb.SetVariablesResponse(changed=sorted(changed))

    @_rpc
    async def GetVariables(self, request: pb.GetVariablesRequest,
                           context: Any) -> pb.GetVariablesResponse:
        views = self.variables.get_all(self.environment())
        return pb.GetVariablesResponse(vars=convert.variable_views_to_proto(views))

    @_rpc
    async def ReportMeasurement(self, request: pb.ReportMeasurementRequest,
                                context: Any) -> pb.ReportMeasurementResponse:
        uuid = convert.required_uuid(request.evse_uuid, "evse_uuid")
        meter = convert.model_from_message(Powermeter, convert.required(request, "meter"),
                                           "meter")
        self.manager.report_measurement(uuid, meter)
        return pb.ReportMeasurementResponse()


# ---- roles ----------------------------------------------------------------------------------


class RoleAuth(grpc.aio.ServerInterceptor):
    """Tell the operator, ordinary clients and strangers apart by their bearer token."""

    def __init__(self, token: str | None, operator_token: str | None) -> None:
        self._client = None if token is None else f"Bearer {token}".encode()
        self._operator = None if operator_token is None else f"Bearer {operator_token}".encode()

    def refusal(self, details: grpc.HandlerCallDetails) -> tuple[grpc.StatusCode, str] | None:
        """Why this call may not run, or None if it may."""
        if details.method.startswith(HEALTH_PREFIX):
            return None
        given = None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
        operator = _matches(given, self._operator)
        client = _matches(given, self._client)  # both compared: timing tells nothing
        if given is None and self._client is None:
            client = True  # allow_unauthenticated on loopback: strangers are clients
        if not (operator or client):
            return grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"
        if details.method in OPERATOR_RPCS and not operator:
            rpc = details.method.rsplit("/", 1)[-1]
            return (grpc.StatusCode.PERMISSION_DENIED,
                    f"{rpc} writes the grid operator's limits: it needs grpc.operator_token")
        return None

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        refusal = None if handler is None else self.refusal(details)
        if refusal is None:
            return handler
        return _deny(handler, *refusal)


def _matches(given: bytes | None, expected: bytes | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given or b"", expected)


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode,
          message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that refuses the call."""
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


# ---- the server ------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS {what} {path}: {exc.strerror}") from exc


class GrpcServer:
    """Runs the gRPC API, the health service and reflection for one manager."""

    def __init__(self, config: GrpcServerConfig, manager: EnergyManager,
                 variables: VariableStore, environment: EnvironmentProvider,
                 audit: AuditLog | None = None) -> None:
        self.config = config
        self.servicer = EnergyManagerServicer(manager, variables, environment, audit)
        self.health: health.aio.HealthServicer | None = None
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port=0)."""
        config = self.config
        token = config.token.get_secret_value() if config.token is not None else None
        operator = (config.operator_token.get_secret_value()
                    if config.operator_token is not None else None)
        server = grpc.aio.server(
            interceptors=[RoleAuth(token, operator)],
            options=[("grpc.so_reuseport", 0)])  # a second server must not share the port
        self.health = health.aio.HealthServicer()  # new: NOT_SERVING after a stop is final
        pb_grpc.add_EnergyManagerServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        self.port = self._bind(server)
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _bind(self, server: grpc.aio.Server) -> int:
        config = self.config
        address = f"{config.host}:{config.port}"
        try:
            if config.tls_cert is not None and config.tls_key is not None:
                pair = (_read(config.tls_key, "key"), _read(config.tls_cert, "certificate"))
                port = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's way of saying the address is taken
            raise ConfigError(f"gRPC cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise ConfigError(f"gRPC cannot listen on {address}")
        return port

    async def stop(self) -> None:
        """Report NOT_SERVING, let calls finish for ``stop_grace_s``, then close."""
        server, self._server = self._server, None
        if server is None:
            return
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        await server.stop(self.config.stop_grace_s)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
