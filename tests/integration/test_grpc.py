"""The gRPC API on a real socket: grpc clients against a live EnergyManager."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
import trustme
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.grpc import GrpcServer, GrpcServerConfig, convert
from adapters.grpc.client import ApiError, EnergyTreeClient
from adapters.grpc.gen.energytree.v1 import energytree_pb2 as pb
from adapters.grpc.gen.energytree.v1 import energytree_pb2_grpc as pb_grpc
from energytree.app import cli
from energytree.clock import ManualClock
from energytree.errors import ConfigError, NotFoundError, RequestError
from energytree.formula import MappingEnvironment
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.plan import instant_plan
from energytree.site import SiteConfig, site_request
from energytree.types import (
    ExternalLimits,
    LimitsReq,
    OptimizerTarget,
    PhaseValues,
    Powermeter,
    PricePerKwh,
    ScheduleReqEntry,
)
from energytree.variables import VariableStore
from energytree.yamlfile import load_model

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TOKEN = "s3cret-token"
OPERATOR = "operator-s3cret"
EVSES = ["carport-1", "carport-2", "carport-3", "workshop-1", "workshop-2", "workshop-1ph"]


def amps(value: float, when: datetime = NOW) -> ExternalLimits:
    entry = ScheduleReqEntry(timestamp=when, limits_to_root=LimitsReq(ac_max_current_A=value),
                             limits_to_leaves=LimitsReq())
    return ExternalLimits(schedule_import=[entry])


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
async def manager(clock):
    site = load_model(ROOT / "examples" / "small-business.yaml", SiteConfig)
    manager = EnergyManager(site_request(site, NOW), planner=instant_plan, clock=clock,
                            options=ManagerOptions(tick_s=0.05), has_meter=True)
    manager.report_grid_meter(MeterFeed((1.0, 2.0, 3.0), 1_400.0, "OK"))
    async with manager:
        yield manager


@pytest.fixture
def store(tmp_path):
    return VariableStore(tmp_path / "variables.json")


def environment():
    return MappingEnvironment({"M1.current": 7000.0}, now=NOW)


async def serve(manager, store, **config):
    config.setdefault("port", 0)
    config.setdefault("operator_token", OPERATOR)
    if "token" not in config:
        config.setdefault("allow_unauthenticated", True)
    server = GrpcServer(GrpcServerConfig(**config), manager, store, environment)
    await server.start()
    return server


@pytest.fixture
async def server(manager, store):
    server = await serve(manager, store)
    yield server
    await server.stop()


@pytest.fixture
async def client(server):
    """The grid operator's client: it may call every RPC."""
    async with EnergyTreeClient(f"127.0.0.1:{server.port}", token=OPERATOR) as client:
        yield client


class OperatorMetadata(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the operator's bearer token to every call of a raw stub."""

    async def intercept_unary_unary(self, continuation, details, request):
        metadata = (*(details.metadata or ()), ("authorization", f"Bearer {OPERATOR}"))
        return await continuation(details._replace(metadata=metadata), request)


@pytest.fixture
async def stub(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                         interceptors=[OperatorMetadata()]) as channel:
        yield pb_grpc.EnergyManagerStub(channel)


async def settled(manager: EnergyManager) -> None:
    """Let the manager re-plan and tick after a change, as its loops would."""
    await manager.replan()
    manager.tick()


def snapshot(manager: EnergyManager) -> tuple:
    """Everything an API call may change."""
    targets = {x.uuid: x.target for x in manager.status().evses}
    return targets, dict(manager.leases.leases), manager.prices


def target_of(manager: EnergyManager, uuid: str) -> OptimizerTarget | None:
    return next(x.target for x in manager.status().evses if x.uuid == uuid)


async def expect(code: grpc.StatusCode, call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value.details()


# ---- the RPCs --------------------------------------------------------------------------------


async def test_submit_and_clear_target(client, manager):
    target = OptimizerTarget(energy_amount_needed=20, leave_time=NOW + timedelta(hours=8))
    await client.submit_target("carport-3", target)
    await settled(manager)
    assert target_of(manager, "carport-3") == target
    status = await client.get_status()
    assert next(x.target for x in status.evses if x.uuid == "carport-3") == target
    await client.clear_target("carport-3")
    await settled(manager)
    assert target_of(manager, "carport-3") is None


async def test_external_limits_with_ttl_and_failsafe(client, manager, clock):
    expires = await client.set_external_limits("dso", "carport", amps(10), ttl_s=60,
                                               failsafe=amps(6))
    assert expires == NOW + timedelta(seconds=60)
    lease = manager.leases.leases["dso"]
    assert (lease.node_uuid, lease.limits, lease.failsafe) == ("carport", amps(10), amps(6))
    await settled(manager)
    status = await client.get_status()
    [source] = status.sources
    assert (source.name, source.node_uuid, source.expires_at) == ("dso", "carport", expires)
    assert source.binding and not source.in_failsafe
    carport = [x for x in status.evses if x.uuid.startswith("carport")]
    assert any("carport/dso" in x.reason for x in carport)
    assert max(x.current_a for x in carport) == pytest.approx(10)
    clock.advance(61)
    await settled(manager)
    [source] = (await client.get_status()).sources
    assert source.in_failsafe
    carport = [x for x in manager.status().evses if x.uuid.startswith("carport")]
    assert max(x.current_a for x in carport) == pytest.approx(6)
    assert await client.clear_external_limits("dso") is True
    assert await client.clear_external_limits("dso") is False
    assert manager.leases.leases == {}


async def test_external_limits_without_ttl_never_expire(client, manager):
    assert await client.set_external_limits("api", "carport", amps(12)) is None
    assert manager.leases.leases["api"].expires_at is None


async def test_set_prices(client, manager):
    prices = [PricePerKwh(timestamp=NOW + timedelta(hours=h), value=0.1 * (h + 1))
              for h in range(4)]
    await client.set_prices(prices)
    assert manager.prices == prices


async def test_get_plan_is_a_what_if(client, manager):
    await settled(manager)
    before, plan_before = snapshot(manager), manager.plan
    target = OptimizerTarget(energy_amount_needed=5, leave_time=NOW + timedelta(hours=4))
    preview = await client.get_plan({"carport-3": target, "carport-1": None})
    assert [x.uuid for x in preview.limits] == EVSES
    assert all(x.schedule for x in preview.limits)
    assert preview.method == "instant allocator"
    planned = {x.uuid: x for x in preview.evses}
    assert planned["carport-3"].planned_kwh == pytest.approx(5, abs=0.1)
    assert planned["carport-3"].shortfall_kwh == pytest.approx(0, abs=0.1)
    await settled(manager)
    assert snapshot(manager) == before
    assert target_of(manager, "carport-3") is None
    assert manager.plan is not plan_before  # re-planned, and still without the what-if
    assert (await client.get_plan()).evses  # no targets: the current plan


async def test_get_status(client, manager):
    meter = Powermeter(power_W=PhaseValues(total=7_000.0), current_A=PhaseValues(L1=10.0))
    manager.report_measurement("carport-1", meter)
    await client.set_external_limits("dso", "grid", amps(30))
    await settled(manager)
    status = await client.get_status()
    assert status.now == NOW and status.planned_at == NOW
    assert status.plan_method == "instant allocator"
    tree = {x.uuid: x for x in status.tree}
    assert list(tree) == ["grid", "carport", *EVSES[:3], "workshop", *EVSES[3:]]
    assert tree["grid"].parent_uuid is None and tree["carport-2"].parent_uuid == "carport"
    assert str(tree["workshop"].node_type) == "Generic"
    assert str(tree["workshop-2"].evse_state) == "Unplugged"
    assert tree["carport-1"].energy_usage_root == meter
    assert [x.uuid for x in status.evses] == EVSES
    assert all(x.reason for x in status.evses), "every EVSE names what binds it"
    assert status.meter == MeterFeed((1.0, 2.0, 3.0), 1_400.0, "OK")
    assert [x.name for x in status.sources] == ["dso"]


async def test_watch_sends_limits_at_once_then_changes(client, manager):
    stream = client.watch_limits()
    first = await asyncio.wait_for(anext(stream), 5)
    assert [x.uuid for x in first] == EVSES
    assert first == manager.enforced_limits
    assert sum(x.limits_root_side.ac_max_current_A for x in first) > 8
    await client.set_external_limits("dso", "carport", amps(8))

    async def until_limited():
        async for limits in stream:
            carport = [x.limits_root_side.ac_max_current_A for x in limits[:3]]
            if sum(carport) <= 8 + 1e-6:
                return limits
        raise AssertionError("stream ended")

    await asyncio.wait_for(until_limited(), 5)
    await stream.aclose()
    for _ in range(100):  # the server side notices the cancelled call and unsubscribes
        if not manager.subscribers:
            break
        await asyncio.sleep(0.01)
    assert not manager.subscribers


async def test_variables(client, store):
    changed = await client.set_variables([("AVAIL", 60), ("half", "AVAIL / 2")])
    assert changed == ["AVAIL", "half"]
    views = {x.name: x for x in await client.get_variables()}
    assert (views["AVAIL"].expr, views["AVAIL"].value) == (60, 60.0)
    assert (views["half"].expr, views["half"].value) == ("AVAIL / 2", 30.0)
    assert await client.set_variables([("AVAIL", 60)]) == []
    await client.set_variables([("only", 1)], clear=True, tmp=True)
    assert store.names() == ["only"]
    fresh = VariableStore(store.path)
    fresh.load()
    assert fresh.names() == ["AVAIL", "half"]  # tmp: the file keeps what was persisted


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("uuid", ["nope", "carport"])  # unknown, and a fuse is not an EVSE
async def test_unknown_evse_is_not_found(stub, manager, uuid):
    before = snapshot(manager)
    target = pb.OptimizerTarget(energy_amount_needed=5)
    await expect(grpc.StatusCode.NOT_FOUND, stub.SubmitOptimizerTarget(
        pb.SubmitOptimizerTargetRequest(evse_uuid=uuid, target=target)))
    await expect(grpc.StatusCode.NOT_FOUND, stub.ClearOptimizerTarget(
        pb.ClearOptimizerTargetRequest(evse_uuid=uuid)))
    plan = pb.GetPlanRequest(targets=[pb.TargetOverride(evse_uuid=uuid)])
    await expect(grpc.StatusCode.NOT_FOUND, stub.GetPlan(plan))
    await settled(manager)
    assert snapshot(manager) == before


async def test_unknown_node_is_not_found(client, manager):
    with pytest.raises(NotFoundError, match="nope"):
        await client.set_external_limits("dso", "nope", amps(10))
    assert manager.leases.leases == {}


def bad_timestamp() -> Timestamp:
    return Timestamp(seconds=10**12)  # beyond 9999-12-31


TARGET_CASES = {
    "negative kWh": (pb.OptimizerTarget(energy_amount_needed=-1),
                     "target.energy_amount_needed"),
    "NaN": (pb.OptimizerTarget(car_battery_soc=math.nan), "target.car_battery_soc"),
    "bad timestamp": (pb.OptimizerTarget(energy_amount_needed=5, leave_time=bad_timestamp()),
                      "target.leave_time"),
    "no target": (None, "target"),
}


@pytest.mark.parametrize("case", TARGET_CASES, ids=list(TARGET_CASES))
async def test_bad_target_is_invalid_argument(stub, manager, case):
    target, field = TARGET_CASES[case]
    before = snapshot(manager)
    request = pb.SubmitOptimizerTargetRequest(evse_uuid="carport-3", target=target)
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT, stub.SubmitOptimizerTarget(request))
    assert details.startswith(f"{field}:"), details
    await settled(manager)
    assert snapshot(manager) == before


def limits_request(**fields) -> pb.SetExternalLimitsRequest:
    entry = pb.ScheduleReqEntry(timestamp=Timestamp(seconds=int(NOW.timestamp())),
                                limits_to_root=pb.LimitsReq(ac_max_current_A=10),
                                limits_to_leaves=pb.LimitsReq())
    defaults = {"source": "dso", "node_uuid": "grid",
                "limits": pb.ExternalLimits(schedule_import=[entry])}
    return pb.SetExternalLimitsRequest(**{**defaults, **fields})


def nan_limits() -> pb.ExternalLimits:
    entry = pb.ScheduleReqEntry(timestamp=Timestamp(seconds=int(NOW.timestamp())),
                                limits_to_root=pb.LimitsReq(ac_max_current_A=math.nan),
                                limits_to_leaves=pb.LimitsReq())
    return pb.ExternalLimits(schedule_import=[entry])


LIMIT_CASES = {
    "empty source name": ({"source": ""}, "source"),
    "bad source name": ({"source": "a b"}, "source"),
    "empty node": ({"node_uuid": ""}, "node_uuid"),
    "no limits": ({"limits": None}, "limits"),
    "NaN current": ({"limits": nan_limits()},
                    "limits.schedule_import[0].limits_to_root.ac_max_current_A"),
    "NaN in failsafe": ({"failsafe": nan_limits()},
                        "failsafe.schedule_import[0].limits_to_root.ac_max_current_A"),
    "missing timestamp": ({"limits": pb.ExternalLimits(schedule_import=[pb.ScheduleReqEntry(
        limits_to_root=pb.LimitsReq(), limits_to_leaves=pb.LimitsReq())])},
        "limits.schedule_import[0].timestamp"),
    "negative TTL": ({"ttl_s": -5}, "ttl_s"),
    "NaN TTL": ({"ttl_s": math.nan}, "ttl_s"),
}


@pytest.mark.parametrize("case", LIMIT_CASES, ids=list(LIMIT_CASES))
async def test_bad_external_limits_are_invalid_argument(stub, manager, case):
    fields, field = LIMIT_CASES[case]
    await stub.SetExternalLimits(limits_request(source="kept"))
    before = snapshot(manager)
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT,
                           stub.SetExternalLimits(limits_request(**fields)))
    assert details.startswith(f"{field}:"), details
    await expect(grpc.StatusCode.INVALID_ARGUMENT,
                 stub.ClearExternalLimits(pb.ClearExternalLimitsRequest(source="")))
    assert snapshot(manager) == before


async def test_bad_prices_change_nothing(stub, manager):
    good = pb.PricePerKwh(timestamp=Timestamp(seconds=int(NOW.timestamp())), value=0.3)
    await stub.SetPrices(pb.SetPricesRequest(prices=[good]))
    before = manager.prices
    bad = [good, pb.PricePerKwh(value=math.nan, timestamp=good.timestamp)]
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT,
                           stub.SetPrices(pb.SetPricesRequest(prices=bad)))
    assert details.startswith("prices[1].value:")
    currency = [pb.PricePerKwh(value=1, timestamp=good.timestamp, currency="euro")]
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT,
                           stub.SetPrices(pb.SetPricesRequest(prices=currency)))
    assert details.startswith("prices[0].currency:")
    assert manager.prices == before


async def test_bad_variables_change_nothing(client, stub, store):
    await client.set_variables([("AVAIL", 60)])
    with pytest.raises(RequestError, match="variable 'y': expected"):
        await client.set_variables([("x", 1), ("y", "1 +")])
    with pytest.raises(RequestError, match="invalid variable name"):
        await client.set_variables([("1x", 1)])
    with pytest.raises(RequestError, match="cycle"):
        await client.set_variables([("a", "b"), ("b", "a")])
    missing = pb.SetVariablesRequest(vars=[pb.Variable(name="z")])
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT, stub.SetVariables(missing))
    assert details.startswith("vars[0]:")
    assert store.names() == ["AVAIL"]


async def test_unexpected_errors_are_internal_and_generic(manager, store, caplog):
    def broken():
        raise RuntimeError("secret detail")

    config = GrpcServerConfig(port=0, allow_unauthenticated=True)
    server = GrpcServer(config, manager, store, broken)
    await server.start()
    try:
        async with EnergyTreeClient(f"127.0.0.1:{server.port}") as client:
            with caplog.at_level(logging.ERROR), pytest.raises(ApiError) as info:
                await client.get_variables()
    finally:
        await server.stop()
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert "secret" not in str(info.value)
    assert "secret detail" in caplog.text and "GetVariables" in caplog.text


@settings(max_examples=200, deadline=None)
@given(energy=st.floats(), soc=st.floats(), seconds=st.integers(-2**63, 2**63 - 1),
       nanos=st.integers(-2**31, 2**31 - 1))
def test_target_conversion_gives_a_target_or_a_request_error(energy, soc, seconds, nanos):
    message = pb.OptimizerTarget(energy_amount_needed=energy, car_battery_soc=soc,
                                 leave_time=Timestamp(seconds=seconds, nanos=nanos))
    try:
        target = convert.target_from_proto(message)
    except RequestError as exc:
        assert str(exc).startswith("target.")
    else:
        assert target.energy_amount_needed == energy and math.isfinite(energy)
        message.leave_time.nanos -= nanos % 1000  # datetimes hold microseconds
        assert convert.model_to_message(target, pb.OptimizerTarget()) == message


# ---- auth, health, reflection, TLS -----------------------------------------------------------


async def test_token_auth(manager, store):
    server = await serve(manager, store, token=TOKEN)
    address = f"127.0.0.1:{server.port}"
    try:
        for token in (None, "wrong", TOKEN + "x"):
            async with EnergyTreeClient(address, token=token) as client:
                with pytest.raises(ApiError) as info:
                    await client.get_status()
                assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(ApiError) as info:
                    await anext(client.watch_limits())
                assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        async with EnergyTreeClient(address, token=TOKEN) as client:
            assert [x.uuid for x in (await client.get_status()).evses] == EVSES
            assert len(await anext(client.watch_limits())) == len(EVSES)
        async with grpc.aio.insecure_channel(address) as channel:  # probes need no token
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop()


async def test_health_and_reflection(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "energytree.v1.EnergyManager"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflect.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.write(reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="energytree.v1.EnergyManager"))
        files = await call.read()
        await call.done_writing()
    names = {s.name for s in reply.list_services_response.service}
    assert {"energytree.v1.EnergyManager", "grpc.health.v1.Health"} <= names
    assert files.file_descriptor_response.file_descriptor_proto


async def test_health_reports_not_serving_after_stop(manager, store):
    server = await serve(manager, store)
    await server.stop()
    assert server.health is not None
    reply = await server.health.Check(health_pb2.HealthCheckRequest(service=""), None)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_tls(manager, store, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(cert_path)
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(cert_path, append=True)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    server = await serve(manager, store, tls_cert=cert_path, tls_key=key_path, token=TOKEN)
    try:
        address = f"127.0.0.1:{server.port}"
        async with EnergyTreeClient(address, token=TOKEN, tls_ca=ca_path) as client:
            assert [x.uuid for x in (await client.get_status()).evses] == EVSES
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(other)
        async with EnergyTreeClient(address, token=TOKEN, tls_ca=other, timeout_s=2) as client:
            with pytest.raises(ApiError) as info:
                await client.get_status()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop()


async def test_a_taken_port_is_a_config_error(server, manager, store):
    with pytest.raises(ConfigError, match="cannot listen"):
        await serve(manager, store, port=server.port)


def test_config_needs_cert_and_key_together(tmp_path):
    with pytest.raises(ValueError, match="together"):
        GrpcServerConfig(tls_cert=tmp_path / "cert.pem", token=TOKEN)


async def test_roles_decide_who_may_write_the_operators_limits(manager, store):
    """Without a token, with the client's and with the operator's: only the operator dims."""
    server = await serve(manager, store, token=TOKEN)
    address = f"127.0.0.1:{server.port}"
    target = OptimizerTarget(energy_amount_needed=5.0)
    try:
        async with EnergyTreeClient(address) as stranger:
            with pytest.raises(ApiError) as info:
                await stranger.set_variables([("AVAIL", 0)])
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        async with EnergyTreeClient(address, token=TOKEN) as ordinary:
            await ordinary.submit_target("carport-1", target)  # its own target: allowed
            assert len((await ordinary.get_status()).evses) == len(EVSES)
            assert await ordinary.get_variables() == []
            for write in (ordinary.set_variables([("AVAIL", 0)]),
                          ordinary.set_external_limits("dso", "grid", amps(0)),
                          ordinary.clear_external_limits("dso")):
                with pytest.raises(ApiError) as info:
                    await write
                assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
                assert "grpc.operator_token" in str(info.value)
        assert store.names() == [] and "dso" not in manager.leases.leases
        async with EnergyTreeClient(address, token=OPERATOR) as operator:
            assert await operator.set_variables([("AVAIL", 40)]) == ["AVAIL"]
            await operator.set_external_limits("dso", "grid", amps(20))
        assert store.names() == ["AVAIL"] and "dso" in manager.leases.leases
    finally:
        await server.stop()


async def test_without_a_token_writes_are_refused_then_operator_only(manager, store):
    """allow_unauthenticated (loopback only): strangers are ordinary clients, never the operator."""
    server = await serve(manager, store)
    try:
        async with EnergyTreeClient(f"127.0.0.1:{server.port}") as stranger:
            await stranger.submit_target("carport-1", OptimizerTarget(energy_amount_needed=5.0))
            with pytest.raises(ApiError) as info:
                await stranger.set_variables([("AVAIL", 0)])
            assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert store.names() == []
    finally:
        await server.stop()


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "would accept writes from anyone"),
    ({"host": "site-controller.local", "allow_unauthenticated": True}, "needs a loopback host"),
    ({"token": TOKEN, "operator_token": TOKEN}, "must differ"),
])
def test_a_grpc_port_open_to_writes_refuses_to_start(fields, message):
    with pytest.raises(ValueError, match=message):
        GrpcServerConfig(**fields)


# ---- the command line against a running server -----------------------------------------------


async def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``energytree ARGV`` in a worker thread (it runs its own event loop)."""
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_target_set_and_clear(server, manager, capsys):
    address = f"127.0.0.1:{server.port}"
    code, _, err = await run_cli(capsys, "target", "set", "carport-3", "--kwh", "20",
                                 "--leave", "07:00", "--timezone", "Europe/Berlin",
                                 "--server", address)
    assert code == 0, err
    await settled(manager)
    target = target_of(manager, "carport-3")
    assert target is not None and target.energy_amount_needed == 20
    local = target.leave_time.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (7, 0)
    assert timedelta(0) < target.leave_time - datetime.now(UTC) <= timedelta(hours=24)
    code, _, err = await run_cli(capsys, "target", "clear", "carport-3", "--server", address)
    assert code == 0, err
    await settled(manager)
    assert target_of(manager, "carport-3") is None


BERLIN = ZoneInfo("Europe/Berlin")
LEAVE_CASES = {  # (now, text, expected leave time in UTC)
    "later today": (datetime(2026, 11, 23, 5, 0, tzinfo=UTC), "07:00",
                    datetime(2026, 11, 23, 6, 0, tzinfo=UTC)),
    "tomorrow": (datetime(2026, 11, 23, 6, 0, tzinfo=UTC), "07:00",
                 datetime(2026, 11, 24, 6, 0, tzinfo=UTC)),
    "across the switch to summer time": (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), "07:00",
                                         datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),
    "RFC 3339": (NOW, "2026-11-24T07:00:00+01:00", datetime(2026, 11, 24, 6, 0, tzinfo=UTC)),
}


@pytest.mark.parametrize("case", LEAVE_CASES, ids=list(LEAVE_CASES))
def test_cli_leave_time_is_the_next_local_wall_clock_time(case):
    now, text, expected = LEAVE_CASES[case]
    assert cli.leave_time(text, BERLIN, now) == expected


async def test_cli_errors(server, manager, capsys):
    address = f"127.0.0.1:{server.port}"
    code, out, err = await run_cli(capsys, "target", "set", "nope", "--kwh", "5",
                                   "--server", address)
    assert (code, out) == (2, "") and "nope" in err
    code, out, err = await run_cli(capsys, "target", "set", "carport-3", "--kwh", "5",
                                   "--leave", "25:00", "--server", address)
    assert (code, out) == (2, "") and "--leave" in err
    code, out, err = await run_cli(capsys, "status", "--server", "127.0.0.1:1")
    assert (code, out) == (2, "") and "cannot reach" in err
    code, out, err = await run_cli(capsys, "status", "--tls-ca", "/no/such/ca.pem",
                                   "--server", address)
    assert (code, out) == (2, "") and "CA certificate" in err


async def test_cli_status_and_watch(server, capsys):
    address = f"127.0.0.1:{server.port}"
    code, out, err = await run_cli(capsys, "status", "--server", address)
    assert code == 0, err
    for uuid in EVSES:
        assert uuid in out
    code, out, err = await run_cli(capsys, "status", "--json", "--server", address)
    assert code == 0, err
    assert [x["uuid"] for x in json.loads(out)["evses"]] == EVSES
    code, out, err = await run_cli(capsys, "limits", "watch", "--count", "2",
                                   "--server", address)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert [x["uuid"] for x in json.loads(lines[0])] == EVSES


async def test_cli_vars(server, store, capsys):
    address = f"127.0.0.1:{server.port}"
    code, out, err = await run_cli(capsys, "vars", "set", "AVAIL", "60", "--server", address)
    assert (code, out) == (2, "") and "grpc.operator_token" in err  # no token: not the operator
    code, out, err = await run_cli(capsys, "vars", "set", "AVAIL", "60", "--server", address,
                                   "--token", OPERATOR)
    assert code == 0, err
    code, out, err = await run_cli(capsys, "vars", "set", "half", "AVAIL / 2",
                                   "--server", address, "--token", OPERATOR)
    assert code == 0, err
    code, out, err = await run_cli(capsys, "vars", "get", "--server", address)
    assert code == 0, err
    assert json.loads(out) == {"vars": [{"name": "AVAIL", "expr": 60, "value": 60.0},
                                        {"name": "half", "expr": "AVAIL / 2", "value": 30.0}]}
