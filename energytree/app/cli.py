"""The ``energytree`` command line: plan, preview, schema, serve, and remote control.

This is the composition root: the one place that knows the core, the optimiser and the
adapters. Bad input prints a clear message on stderr and exits with status 2; nothing is
printed on stdout then.

``target``, ``limits``, ``status`` and ``vars`` talk to a running server through the gRPC
client (``--server``, default 127.0.0.1:50051; the token comes from ``--token`` or the
``ENERGYTREE_TOKEN`` environment variable, ``--tls-ca`` turns on TLS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from energytree.errors import ConfigError, EnergyTreeError, RequestError
from energytree.inputs import load_prices, load_request
from energytree.logs import tame_library_loggers
from energytree.plan import Plan
from energytree.planjson import write_enforced_limits
from energytree.problem import PlanOptions, Problem, build_problem
from energytree.types import (
    EnergyFlowRequest,
    EnforcedLimits,
    ExternalLimits,
    OptimizerTarget,
    format_timestamp,
    to_utc,
)

if TYPE_CHECKING:
    from adapters.grpc.client import EnergyTreeClient

__all__ = ["main"]

EXIT_BAD_INPUT = 2
SITE_FILE = "SiteFile"  # the site file read by ``serve`` and ``preview``
SCHEMAS = {
    "EnergyFlowRequest": EnergyFlowRequest,
    "EnforcedLimits": EnforcedLimits,
    "ExternalLimits": ExternalLimits,
}


def _timestamp(text: str) -> datetime:
    try:
        value = to_utc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _number(text: str, fits: Callable[[float], bool], must: str) -> float:
    """A command-line number that ``fits`` (NaN never does), else an error saying what it
    ``must`` be."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not fits(value):
        raise argparse.ArgumentTypeError(f"must be {must}: {text!r}")
    return value


def _positive(text: str) -> float:
    return _number(text, lambda v: 0 < v < math.inf, "a positive number")


def _percent(text: str) -> float:
    return _number(text, lambda v: 0 <= v <= 100, "between 0 and 100")


def _seconds(text: str) -> int:
    """A validity in whole seconds, as ``EnforcedLimits.valid_for`` allows (1 s … 1 day)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be between 1 and 86400 seconds: {text!r}")
    return value


def make_plan(problem: Problem, time_budget_s: float = 2.0) -> Plan:
    """Plan with the optimiser; it falls back to the instant allocator by itself."""
    from optimizer import optimise

    return optimise(problem, time_budget_s=time_budget_s)


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """A one-shot command frees its objects by reference counting; the cyclic collector
    would only walk the request's tens of thousands of objects again and again (5-10 % of a
    plan for 1000 EVSEs). It runs again afterwards (tests call the commands in-process)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cmd_plan(args: argparse.Namespace) -> int:
    with no_cyclic_gc():
        request = load_request(args.request)
        prices = load_prices(args.prices) if args.prices else []
        now = args.now or datetime.now(UTC).replace(microsecond=0)
        options = PlanOptions(
            slot_s=args.slot_minutes * 60,
            horizon_s=args.horizon_hours * 3600,
            nominal_voltage_v=args.nominal_voltage,
        )
        problem = build_problem(request, now, options, prices=prices)
        plan = make_plan(problem, args.time_budget)
        write_enforced_limits(plan, now + timedelta(seconds=args.valid_for), args.valid_for,
                              sys.stdout)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.type == SITE_FILE:
        from energytree.app.service import ServiceConfig

        model: type[BaseModel] = ServiceConfig
    else:
        model = SCHEMAS[args.type]
    schema = {**model.model_json_schema(mode="validation"), "title": args.type}
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from energytree.app.preview import run_preview

    return run_preview(args)


def _state_file(args: argparse.Namespace, name: str, what: str) -> Path:
    path = Path(args.state_dir) / name
    if not path.exists():
        raise ConfigError(f"{path}: no {what} here (is --state-dir the service's?)")
    return path


def _cmd_audit(args: argparse.Namespace) -> int:
    from energytree.audit import AuditLog

    log = AuditLog(_state_file(args, "audit.sqlite", "audit log"))
    try:
        sys.stdout.write(log.to_csv())
    finally:
        log.close()
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    from energytree.sessions import Database, SessionLog

    db = Database(_state_file(args, "sessions.sqlite", "session log"))
    try:
        SessionLog(db).write_csv(sys.stdout)
    finally:
        db.close()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from energytree.app.service import run_service

    return run_service(args)


# ---- remote control over gRPC --------------------------------------------------------------


def _zone(text: str) -> tzinfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone: {text!r}") from None


def leave_time(text: str, zone: tzinfo, now: datetime) -> datetime:
    """``HH:MM`` is the next such wall-clock time in ``zone`` after ``now``; else RFC 3339
    (a date and time without an offset is in ``zone`` too)."""
    try:
        clock = time.fromisoformat(text)
    except ValueError:
        try:
            local = datetime.fromisoformat(text)
        except ValueError as exc:
            raise RequestError(f"--leave: use HH:MM or RFC 3339 ({exc})") from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=zone)
        return local.astimezone(UTC)
    today = now.astimezone(zone).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        candidate = datetime.combine(day, clock.replace(tzinfo=None), tzinfo=zone)
        if candidate > now:
            return candidate.astimezone(UTC)
    raise RequestError(f"--leave: no next {text}")  # pragma: no cover


def _client(args: argparse.Namespace) -> EnergyTreeClient:
    from adapters.grpc.client import EnergyTreeClient

    token = args.token or os.environ.get("ENERGYTREE_TOKEN") or None
    return EnergyTreeClient(args.server, token=token, tls_ca=args.tls_ca)


def _remote(call: Callable[[EnergyTreeClient, argparse.Namespace], Awaitable[int]]
            ) -> Callable[[argparse.Namespace], int]:
    """A command handler that runs ``call`` with a client in its own event loop."""
    async def session(args: argparse.Namespace) -> int:
        async with _client(args) as client:
            return await call(client, args)

    return lambda args: asyncio.run(session(args))


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _print_json(value: Any, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(value, indent=indent, default=_json_default) + "\n")
    sys.stdout.flush()


async def _target_set(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    leave = None
    if args.leave is not None:  # clock times are the site's unless --timezone says otherwise
        zone = args.timezone or _zone(await client.site_timezone())
        leave = leave_time(args.leave, zone, datetime.now(UTC))
    target = OptimizerTarget(energy_amount_needed=args.kwh, leave_time=leave,
                             price_limit=args.price_limit, car_battery_soc=args.soc,
                             charge_to_max_percent=args.charge_to,
                             car_battery_capacity_kWh=args.battery_kwh)
    answer = await client.submit_target(args.evse, target)
    _print_json({"evse": args.evse, "target": target, "plan": dataclasses.asdict(answer)})
    return 0


async def _target_clear(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    await client.clear_target(args.evse)
    return 0


async def _limits_watch(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    """One JSON array of EnforcedLimits per line, as they are published."""
    seen = 0
    async for limits in client.watch_limits():
        _print_json(limits, indent=None)
        seen += 1
        if args.count is not None and seen >= args.count:
            break
    return 0


async def _status(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    status = await client.get_status()
    if args.json:
        _print_json(dataclasses.asdict(status))
        return 0
    lines = [f"{format_timestamp(status.now)}  plan: {status.plan_method}",
             f"{'EVSE':<16} {'state':<14} {'A':>7} {'ph':>2} {'W':>8} {'kWh':>7}  reason"]
    for x in status.evses:
        lines.append(f"{x.uuid:<16} {x.state or '-':<14} {x.current_a:7.2f} {x.phases:2d} "
                     f"{x.power_w:8.0f} {x.planned_kwh:7.2f}  {x.reason}")
    for src in status.sources:
        expiry = format_timestamp(src.expires_at) if src.expires_at else "never"
        flags = " failsafe" * src.in_failsafe + " binding" * src.binding
        lines.append(f"source {src.name} on {src.node_uuid}{src.applied_text()}, "
                     f"expires {expiry}{flags}")
    if status.meter is not None:
        lines.append(f"grid meter: {status.meter.state} {status.meter.current_a or ''}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _expr(text: str) -> str | float:
    """A finite number stays a number; anything else is a formula."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


async def _vars_set(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    changed = await client.set_variables([(args.name, _expr(args.expr))], clear=args.clear,
                                         tmp=args.tmp)
    _print_json({"changed": changed})
    return 0


async def _vars_get(client: EnergyTreeClient, args: argparse.Namespace) -> int:
    views = await client.get_variables()
    shown = [{"name": v.name, "expr": v.expr, "value": v.value}
             | ({"error": v.error} if v.error else {}) for v in views]
    _print_json({"vars": shown})
    return 0


def _remote_parser(sub: Any, name: str, help_text: str, call: Callable[..., Awaitable[int]]
                   ) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("--server", default="127.0.0.1:50051", help="host:port of the server")
    parser.add_argument("--token", help="bearer token: grpc.token, or grpc.operator_token to "
                        "set variables (default: $ENERGYTREE_TOKEN)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate (PEM): use TLS")
    parser.set_defaults(handler=_remote(call))
    return parser


def _add_remote_commands(sub: Any) -> None:
    target = sub.add_parser("target", help="set or clear an EVSE's charging target")
    verbs = target.add_subparsers(dest="verb", required=True)
    tset = _remote_parser(verbs, "set", "set the target of one EVSE", _target_set)
    tset.add_argument("evse", help="the EVSE's uuid")
    tset.add_argument("--kwh", type=_positive, help="energy needed [kWh]")
    tset.add_argument("--soc", type=_percent, help="the car's state of charge now [%%]")
    tset.add_argument("--charge-to", type=_percent, help="charge to this SoC [%%] (--soc)")
    tset.add_argument("--battery-kwh", type=_positive, help="the car's battery capacity [kWh]")
    tset.add_argument("--leave", help="leave time: HH:MM (the next one) or RFC 3339; without "
                      "an offset in the site's time zone")
    tset.add_argument("--timezone", type=_zone, help="zone of --leave (default: the site's)")
    tset.add_argument("--price-limit", type=float, help="charge whenever price <= this")
    tclear = _remote_parser(verbs, "clear", "clear the target of one EVSE", _target_clear)
    tclear.add_argument("evse", help="the EVSE's uuid")

    limits = sub.add_parser("limits", help="follow the enforced limits")
    verbs = limits.add_subparsers(dest="verb", required=True)
    watch = _remote_parser(verbs, "watch", "print each publication as a JSON line",
                           _limits_watch)
    watch.add_argument("--count", type=int, help="stop after this many publications")

    status = _remote_parser(sub, "status", "show EVSEs, limits, sources and the meter", _status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    variables = sub.add_parser("vars", help="charging-manager variables (CM.name)")
    verbs = variables.add_subparsers(dest="verb", required=True)
    _remote_parser(verbs, "get", "print every variable with its value", _vars_get)
    vset = _remote_parser(verbs, "set", "set one variable to a number or formula", _vars_set)
    vset.add_argument("name")
    vset.add_argument("expr", help="a number or a formula, e.g. '55000 * CM.AVAIL / 100'")
    vset.add_argument("--clear", action="store_true", help="delete all other variables")
    vset.add_argument("--tmp", action="store_true", help="do not persist the change")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energytree", description="Energy manager for EV charging sites."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log decisions")
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="plan an EnergyFlowRequest and print EnforcedLimits")
    plan.add_argument("request", help="EnergyFlowRequest JSON file")
    plan.add_argument("--now", type=_timestamp, help="RFC 3339 start time (default: now)")
    plan.add_argument("--slot-minutes", type=_positive, default=15.0)
    plan.add_argument("--horizon-hours", type=_positive, default=24.0)
    plan.add_argument("--prices", help="price file (JSON list or CSV timestamp,value)")
    plan.add_argument("--nominal-voltage", type=_positive, default=230.0, help="[V]")
    plan.add_argument("--valid-for", type=_seconds, default=10, help="validity of the limits [s]")
    plan.add_argument("--time-budget", type=_positive, default=2.0, help="solver budget [s]")
    plan.set_defaults(handler=_cmd_plan)

    schema = sub.add_parser("schema", help="print the JSON Schema of an energy type or of the "
                                           "site file")
    schema.add_argument("type", nargs="?", default="EnergyFlowRequest",
                        choices=sorted([*SCHEMAS, SITE_FILE]))
    schema.set_defaults(handler=_cmd_schema)

    preview = sub.add_parser("preview", help="show the plan of a site file as a table and chart")
    preview.add_argument("site", help="site file (YAML)")
    preview.add_argument("--prices", help="price file (JSON list or CSV timestamp,value)")
    preview.add_argument("--targets", help="targets JSON: {evse uuid: OptimizerTarget}")
    preview.add_argument("--now", type=_timestamp, help="RFC 3339 start time (default: now)")
    preview.add_argument("--out", help="write the chart to this .png or .svg file")
    preview.add_argument("--slots", type=int, default=None,
                         help="at most this many table rows per EVSE (rows where the plan "
                              "changes come first)")
    preview.set_defaults(handler=_cmd_preview)

    serve = sub.add_parser("serve", help="run the energy manager for a site file")
    serve.add_argument("site", help="site file (YAML)")
    serve.add_argument("--simulate", action="store_true",
                       help="simulated cars, and a simulated grid meter in place of the real one "
                       "unless the site file says simulation.grid_meter: external")
    serve.add_argument("--state-dir", default="state", help="where state survives restarts")
    serve.add_argument("--duration", type=_positive, help="stop after this many seconds")
    serve.set_defaults(handler=_cmd_serve)

    audit = sub.add_parser("audit", help="print the audit log of grid-operator commands (CSV)")
    audit.add_argument("--state-dir", default="state", help="the service's state directory")
    audit.set_defaults(handler=_cmd_audit)

    sessions = sub.add_parser("sessions", help="print the charging-session log (CSV)")
    sessions.add_argument("--state-dir", default="state", help="the service's state directory")
    sessions.set_defaults(handler=_cmd_sessions)
    _add_remote_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    tame_library_loggers(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except EnergyTreeError as exc:
        sys.stderr.write(f"energytree {args.command}: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `energytree limits watch | head`: the reader has had enough
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
