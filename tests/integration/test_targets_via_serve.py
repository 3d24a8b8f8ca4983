"""Targets through ``energytree serve``'s wiring: a real gRPC client and the CLI on 127.0.0.1.

A target the service accepts is answered with the plan it caused, and GetStatus right after
shows the same plan; a target that cannot mean anything is refused with INVALID_ARGUMENT, every
problem named in the message and as ``google.rpc.BadRequest`` field violations in the status
details, and nothing changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from adapters.grpc import GrpcServer
from adapters.grpc.client import EnergyTreeClient
from adapters.grpc.gen.energytree.v1 import energytree_pb2 as pb
from adapters.grpc.gen.energytree.v1 import energytree_pb2_grpc as pb_grpc
from energytree.app import cli
from energytree.types import OptimizerTarget
from tests.integration.test_grpc import run_cli
from tests.integration.test_runtime import Recorder, running, site


def grpc_site():
    config = site(grpc={"host": "127.0.0.1", "port": 0, "allow_unauthenticated": True})
    garage = config.grid.children[0].model_copy(update={"battery_kWh": 60.0})
    grid = config.grid.model_copy(update={"children": [garage, config.grid.children[1]]})
    return config.model_copy(update={"grid": grid})


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    servers = Recorder(GrpcServer)
    monkeypatch.setattr("energytree.app.plugs.grpcapi.GrpcServer", servers)
    async with running(grpc_site(), tmp_path) as service:
        service.address = f"127.0.0.1:{servers.made[-1].port}"
        yield service


def stamp(when: datetime) -> Timestamp:
    return Timestamp(seconds=int(when.timestamp()))


def bad_request(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The field violations in the status details, by field."""
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return {v.field: v.description for v in bad.field_violations}


async def test_an_accepted_target_is_answered_with_its_plan(service) -> None:
    leave = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)
    async with EnergyTreeClient(service.address) as client:
        answer = await client.submit_target(
            "garage", OptimizerTarget(energy_amount_needed=10, leave_time=leave))
        status = await client.get_status()
        async with grpc.aio.insecure_channel(service.address) as channel:
            raw = await pb_grpc.EnergyManagerStub(channel).GetStatus(pb.GetStatusRequest())
    assert answer.reachable and answer.shortfall_kwh == 0.0
    assert answer.expected_energy_kwh == pytest.approx(10.0, abs=1e-3)
    assert answer.plan_id.endswith(f"#{answer.plan_version}") and answer.reason
    garage = next(x for x in status.evses if x.uuid == "garage")
    assert garage.target is not None and garage.target.energy_amount_needed == 10
    assert garage.target.car_battery_capacity_kWh == 60.0  # the site file's battery
    assert raw.plan_version == answer.plan_version and raw.timezone == "Europe/Berlin"


async def test_unusable_targets_are_refused_with_every_violation(service) -> None:
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = pb_grpc.EnergyManagerStub(channel)
        before = await stub.GetStatus(pb.GetStatusRequest())
        cases = {
            "past, SoC without battery": (
                "carport", pb.OptimizerTarget(car_battery_soc=40,
                                              leave_time=stamp(datetime(2020, 1, 1, tzinfo=UTC))),
                {"target.leave_time", "target.car_battery_capacity_kWh"}),
            "1970": ("garage", pb.OptimizerTarget(energy_amount_needed=5, leave_time=stamp(
                datetime(1970, 1, 2, tzinfo=UTC))), {"target.leave_time"}),
            "empty": ("garage", pb.OptimizerTarget(), {"target"}),
        }
        for evse, target, fields in cases.values():
            request = pb.SubmitOptimizerTargetRequest(evse_uuid=evse, target=target)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.SubmitOptimizerTarget(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            violations = bad_request(info.value)
            assert set(violations) == fields
            for field in fields:
                assert field in info.value.details()
        after = await stub.GetStatus(pb.GetStatusRequest())
    assert [x.target for x in after.evses] == [x.target for x in before.evses]
    assert after.plan_version == before.plan_version


async def test_cli_clock_times_are_the_sites_and_refusals_exit_2(service, capsys) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock = (datetime.now(berlin) + timedelta(hours=3)).replace(second=0, microsecond=0)
    code, out, err = await run_cli(capsys, "target", "set", "garage", "--kwh", "5",
                                   "--leave", f"{clock:%H:%M}", "--server", service.address)
    assert code == 0, err
    target = next(x.target for x in service.manager.status().evses if x.uuid == "garage")
    assert target.leave_time == clock  # the site's wall clock, 3 h ahead: time to charge
    assert '"reachable": true' in out
    code, out, err = await run_cli(capsys, "target", "set", "carport", "--soc", "40",
                                   "--server", service.address)
    assert (code, out) == (2, "") and "target.car_battery_capacity_kWh" in err
    code, out, err = await run_cli(capsys, "target", "set", "carport",
                                   "--server", service.address)
    assert (code, out) == (2, "") and "target: empty" in err
    assert cli.leave_time("2026-11-24T07:00", ZoneInfo("Europe/Berlin"), datetime.now(UTC)) \
        == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
