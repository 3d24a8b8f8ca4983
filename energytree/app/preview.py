"""``energytree preview SITE.yaml``: the plan for people — a table, a chart, the totals.

The orchestration only: read the site, prices and targets, plan, hand the plan to
``render`` (text) and ``chart`` (a PNG or SVG file). Every problem with the inputs becomes a
``ConfigError`` or ``RequestError`` naming the file, so the CLI exits with 2 and prints nothing
on stdout. Progress goes to stderr, never stdout, so the plan can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from energytree.app.render import View, render_preview
from energytree.errors import ConfigError, EnergyTreeError, FormulaError, RequestError
from energytree.formula import Formula, MappingEnvironment
from energytree.inputs import load_prices, load_targets
from energytree.plan import Plan
from energytree.problem import PlanOptions, build_problem
from energytree.site import SiteConfig, evse_configs, site_request
from energytree.types import OptimizerTarget, PricePerKwh
from energytree.yamlfile import load_model

__all__ = ["CHART_FORMATS", "LARGE_SITE_EVSES", "progress", "run_preview"]

CHART_FORMATS = {".png": "png", ".svg": "svg"}
LARGE_SITE_EVSES = 50  # above this a "planning …" line is worth printing even without a TTY
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
MIN_WIDTH, MAX_WIDTH = 72, 140


def run_preview(args: argparse.Namespace) -> int:
    """Plan a site file and print the plan for people; write the chart if ``--out`` says so."""
    out_format = _chart_format(args.out)
    if args.slots is not None and args.slots < 1:
        raise RequestError(f"--slots must be at least 1, not {args.slots}")
    site = load_model(args.site, SiteConfig)
    tz = _timezone(site, args.site)
    prices = load_prices(args.prices) if args.prices else []
    if args.targets:
        site = _with_targets(site, load_targets(args.targets), args.targets)
    now = args.now or datetime.now(UTC).replace(microsecond=0)
    notes: list[str] = []
    plan = _plan(site, now, prices, args.site, _formula_resolver(now, tz, prices, notes))
    view = View(tz=tz, title=site.name, currency=_currency(prices, args.prices),
                max_rows=args.slots, width=_width(), notes=tuple(notes))
    text = render_preview(plan, view)
    if out_format:  # before stdout: a chart that cannot be written leaves stdout empty
        _write_chart(plan, view, Path(args.out), out_format)
        text += f"chart: {args.out}\n"
    sys.stdout.write(text)
    return 0


def _chart_format(out: str | None) -> str | None:
    if out is None:
        return None
    fmt = CHART_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise RequestError(f"--out {out}: the chart file must end in .png or .svg")
    return fmt


def _timezone(site: SiteConfig, path: str) -> ZoneInfo:
    """The site's zone; the site model does not check the name, so this names the line."""
    try:
        return ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        text = Path(path).read_text(encoding="utf-8")
        match = re.search(r"^timezone\s*:", text, flags=re.MULTILINE)
        line = f":{text.count(chr(10), 0, match.start()) + 1}" if match else ""
        raise ConfigError(
            f"{path}{line}: timezone: unknown time zone {site.timezone!r} "
            "(an IANA name such as Europe/Berlin)"
        ) from None


def _with_targets(site: SiteConfig, targets: dict[str, OptimizerTarget], path: str
                  ) -> SiteConfig:
    """A copy of the site whose EVSEs carry the targets of the file, which win."""
    site = site.model_copy(deep=True)
    by_uuid = {evse.evse: evse for evse in evse_configs(site)}
    for uuid, target in targets.items():
        if uuid not in by_uuid:
            known = ", ".join(sorted(by_uuid))
            raise RequestError(f"{path}: {uuid}: no EVSE with this uuid in the site ({known})")
        by_uuid[uuid].target = target
    return site


def _currency(prices: list[PricePerKwh], path: str | None) -> str | None:
    currencies = {p.currency for p in prices}
    if len(currencies) > 1:
        raise RequestError(f"{path}: mixed currencies {sorted(currencies)}")
    return currencies.pop() if currencies else None


def _formula_resolver(now: datetime, tz: ZoneInfo, prices: list[PricePerKwh],
                      notes: list[str]) -> Callable[[str], float]:
    """Formula limits of a live site, evaluated once at ``now`` with no live values set.

    So a site file written for ``serve`` previews too; each value is noted in the output.
    """
    env = MappingEnvironment({}, now=now, timezone=tz,
                             prices=[(p.timestamp, p.value) for p in prices])

    def resolve(text: str) -> float:
        try:
            value = Formula.parse(text).evaluate(env)
        except FormulaError as exc:
            raise ConfigError(f"a formula needs live values the preview has not: {exc}") from exc
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"formula {text!r} gives {value:g}, which is not a limit")
        notes.append(f"formula {text!r} = {value:g} (evaluated at the start, no live values)")
        return value

    return resolve


def _plan(site: SiteConfig, now: datetime, prices: list[PricePerKwh], path: str,
          resolve: Callable[[str], float]) -> Plan:
    from energytree.app.cli import make_plan  # the composition root owns the optimiser import

    options = PlanOptions(
        slot_s=site.slot_minutes * 60,
        horizon_s=site.horizon_hours * 3600,
        nominal_voltage_v=site.nominal_voltage_V,
    )
    try:
        problem = build_problem(site_request(site, now, resolve), now, options, prices=prices)
    except ValueError as exc:  # the slot grid refuses too many slots
        raise ConfigError(f"{path}: slot_minutes / horizon_hours: {exc}") from exc
    except EnergyTreeError as exc:  # no EVSE, a formula that needs live values …
        raise ConfigError(f"{path}: {exc}") from exc
    with progress(problem.evse_count, sys.stderr):
        return make_plan(problem)


def _width() -> int:
    return max(MIN_WIDTH, min(MAX_WIDTH, shutil.get_terminal_size((100, 24)).columns))


@contextlib.contextmanager
def progress(evse_count: int, stream: TextIO) -> Iterator[None]:
    """Show that planning runs: a spinner on a terminal, one line for large sites otherwise.

    Always on ``stream`` (stderr), so stdout holds only the plan.
    """
    message = f"planning {evse_count} EVSEs…"
    if not stream.isatty():
        if evse_count > LARGE_SITE_EVSES:
            stream.write(message + "\n")
            stream.flush()
        yield
        return
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stream, message, stop), daemon=True)
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join()


def _spin(stream: TextIO, message: str, stop: threading.Event) -> None:
    """Redraw one line until ``stop``; then blank it so the terminal shows only the plan."""
    started = time.monotonic()
    width = 0
    for frame in itertools.cycle(SPINNER):
        line = f"\r{frame} {message} {time.monotonic() - started:.1f} s"
        width = max(width, len(line))
        stream.write(line)
        stream.flush()
        if stop.wait(0.1):
            break
    stream.write("\r" + " " * width + "\r")
    stream.flush()


def _write_chart(plan: Plan, view: View, path: Path, fmt: str) -> None:
    from energytree.app.chart import write_chart  # matplotlib is slow to import; only when asked

    try:
        write_chart(plan, view, path, fmt)
    except OSError as exc:
        raise RequestError(f"--out {path}: cannot write: {exc.strerror or exc}") from exc
