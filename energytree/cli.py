"""The ``energytree`` command line: plan, preview, schema, serve, and remote control.

``target``, ``limits``, ``status`` and ``vars`` talk to a running server over gRPC
(``--server``, default 127.0.0.1:50051; the token comes from ``--token`` or the
``ENERGYTREE_TOKEN`` environment variable).

This is the composition root: the one place that knows the core, the optimiser and the
adapters. Bad input prints a clear message on stderr and exits with status 2; nothing is
printed on stdout then.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from energytree.errors import EnergyTreeError
from energytree.inputs import load_prices, load_request
from energytree.plan import Plan
from energytree.problem import PlanOptions, Problem, build_problem
from energytree.types import EnergyFlowRequest, EnforcedLimits, ExternalLimits, to_utc

__all__ = ["main"]

EXIT_BAD_INPUT = 2
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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def make_plan(problem: Problem, time_budget_s: float = 2.0) -> Plan:
    """Plan with the optimiser; it falls back to the instant allocator by itself."""
    from optimizer import optimise

    return optimise(problem, time_budget_s=time_budget_s)


def _cmd_plan(args: argparse.Namespace) -> int:
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
    limits = plan.enforced_limits(now + timedelta(seconds=args.valid_for), args.valid_for)
    payload = [x.model_dump(mode="json", exclude_none=True) for x in limits]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    schema = SCHEMAS[args.type].model_json_schema(mode="validation")
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from energytree.preview import run_preview

    return run_preview(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from energytree.service import run_service

    return run_service(args)


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
    plan.add_argument("--valid-for", type=int, default=10, help="validity of the limits [s]")
    plan.add_argument("--time-budget", type=_positive, default=2.0, help="solver budget [s]")
    plan.set_defaults(handler=_cmd_plan)

    schema = sub.add_parser("schema", help="print the JSON Schema of an energy type")
    schema.add_argument("type", nargs="?", default="EnergyFlowRequest", choices=sorted(SCHEMAS))
    schema.set_defaults(handler=_cmd_schema)

    preview = sub.add_parser("preview", help="show the plan of a site file as a table and chart")
    preview.add_argument("site", help="site file (YAML)")
    preview.add_argument("--prices", help="price file (JSON list or CSV timestamp,value)")
    preview.add_argument("--targets", help="targets JSON: {evse uuid: OptimizerTarget}")
    preview.add_argument("--now", type=_timestamp, help="RFC 3339 start time (default: now)")
    preview.add_argument("--out", help="write the chart to this .png or .svg file")
    preview.add_argument("--slots", type=int, default=None, help="rows of the table per EVSE")
    preview.set_defaults(handler=_cmd_preview)

    serve = sub.add_parser("serve", help="run the energy manager for a site file")
    serve.add_argument("site", help="site file (YAML)")
    serve.add_argument("--simulate", action="store_true", help="simulated chargers and meter")
    serve.add_argument("--state-dir", default="state", help="where state survives restarts")
    serve.add_argument("--duration", type=_positive, help="stop after this many seconds")
    serve.set_defaults(handler=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except EnergyTreeError as exc:
        sys.stderr.write(f"energytree {args.command}: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
