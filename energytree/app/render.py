"""A plan as text for people: a table per EVSE, a chart drawn with block characters, totals.

Everything here is pure: a ``Plan`` and a ``View`` in, lines of text out. Times are shown in
the site's local time zone (DST-aware); when the horizon crosses an offset change every time
carries its zone abbreviation, so 02:30 CEST and 02:30 CET stay apart.

>>> text = render_preview(plan, View(tz=ZoneInfo("Europe/Berlin"), title="Home"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np

from energytree.plan import Plan
from energytree.planfigures import (
    SHORTFALL_KWH,
    delivered_kwh,
    departures,
    planned_phase_load_a,
    site_limit_w,
)
from energytree.types import OptimizerTarget, format_timestamp

__all__ = [
    "View", "chart_series", "departure_label", "render_chart", "render_evse", "render_feeders",
    "render_meta", "render_preview", "shown_slots",
]

SYMBOLS = "█▓▒░#=+:"
SPARKS = "▁▂▃▄▅▆▇█"
CHART_ROWS = 10
MARGIN = 9  # y-axis labels and the axis character
MAX_DEPARTURE_LABELS = 6
FEEDER_SUMMARY_EVSES = 12  # bigger sites get a summary per feeder before the EVSE tables


@dataclass(frozen=True)
class View:
    """How to show a plan: the site's time zone, its name, money, table rows, width, and
    notes from reading the inputs."""

    tz: tzinfo
    title: str = "site"
    currency: str | None = None
    max_rows: int | None = None
    width: int = 100
    notes: tuple[str, ...] = ()


def departure_label(uuids: list[str]) -> str:
    """The first EVSE leaving at a time, and how many more leave with it."""
    return uuids[0] if len(uuids) == 1 else f"{uuids[0]} +{len(uuids) - 1}"


def chart_series(plan: Plan, max_series: int) -> list[tuple[str, np.ndarray]]:
    """Stack layers: one per EVSE, else one per branch below the root, else the site."""
    p = plan.problem
    if p.evse_count <= max_series:
        return [(n.uuid, np.array([k])) for k, n in enumerate(p.tree.evses)]
    root = p.tree.root
    branches = [n for n in p.tree if n.parent == root.index]
    if len(branches) <= max_series:
        return [(f"{n.uuid} ({_count(n.evse_hi - n.evse_lo)})", np.arange(n.evse_lo, n.evse_hi))
                for n in branches if n.evse_hi > n.evse_lo]
    return [(f"all {_count(p.evse_count)}", np.arange(p.evse_count))]


def _count(evses: int) -> str:
    return f"{evses} EVSE" if evses == 1 else f"{evses} EVSEs"


# -- time labels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """Local times of one plan: weekday and time; the zone when the offset changes inside
    the horizon; the date when a weekday alone is ambiguous."""

    tz: tzinfo
    fmt: str
    start_s: float
    end_s: float

    @classmethod
    def of(cls, plan: Plan, tz: tzinfo) -> _Clock:
        start, end = float(plan.problem.grid.starts[0]), float(plan.problem.grid.ends[-1])
        offsets = {datetime.fromtimestamp(s, tz).utcoffset() for s in (start, end)}
        fmt = "%a %d %b %H:%M" if end - start >= 6 * 86400 else "%a %H:%M"
        return cls(tz, fmt + (" %Z" if len(offsets) > 1 else ""), start, end)

    @property
    def width(self) -> int:
        return max(len(self.at(self.start_s)), len(self.at(self.end_s)))

    def at(self, seconds: float) -> str:
        return datetime.fromtimestamp(float(seconds), self.tz).strftime(self.fmt)

    def moment(self, seconds: float) -> str:
        """A time the horizon may not contain (a past leave time): with its date."""
        if self.start_s <= seconds <= self.end_s:
            return self.at(seconds)
        return datetime.fromtimestamp(float(seconds), self.tz).strftime("%a %d %b %Y %H:%M %Z")


# -- the table ---------------------------------------------------------------------------------


def shown_slots(plan: Plan, evse: int, max_rows: int | None) -> tuple[list[int], int]:
    """Slots worth a row: first, last, leave time and every change of A, phases or reason.

    Returns the slots and how many were left out because of ``max_rows``.
    """
    amps = np.round(plan.current_a[evse], 1)
    phases = np.where(amps != 0, plan.phases[evse], 0)
    reasons = plan.reasons[evse]
    deadline = int(plan.deadlines()[evse])
    last = plan.problem.slots - 1
    keep = [
        t for t in range(plan.problem.slots)
        if t in (0, last, deadline)
        or amps[t] != amps[t - 1] or phases[t] != phases[t - 1] or reasons[t] != reasons[t - 1]
    ]
    if max_rows is not None and len(keep) > max_rows:
        return keep[:max_rows], len(keep) - max_rows
    return keep, 0


def _soc_basis(target: OptimizerTarget | None) -> tuple[float, float] | None:
    """(SoC now [%], capacity [kWh]) when both are known, so energy can be shown as SoC."""
    if target is None or target.car_battery_soc is None or not target.car_battery_capacity_kWh:
        return None
    return float(target.car_battery_soc), float(target.car_battery_capacity_kWh)


def _energy_cell(kwh: float, soc: tuple[float, float] | None) -> str:
    if soc is None:
        return f"{kwh:7.1f} kWh"
    return f"{soc[0] + 100.0 * kwh / soc[1]:9.1f} %"


def _describe_target(target: OptimizerTarget | None, clock: _Clock) -> str:
    if target is None:
        return "no target: charges as soon as capacity allows"
    parts = []
    if target.energy_amount_needed is not None:
        parts.append(f"{target.energy_amount_needed:.1f} kWh")
    elif target.car_battery_soc is not None:
        goal = 100 if target.charge_to_max_percent is None else target.charge_to_max_percent
        parts.append(f"SoC {target.car_battery_soc:g} → {goal:g} %")
    if target.car_battery_capacity_kWh:
        parts.append(f"battery {target.car_battery_capacity_kWh:g} kWh")
    if target.price_limit is not None:
        parts.append(f"whenever price ≤ {target.price_limit:g}")
    if target.full_autonomy:
        parts.append("local generation only")
    if target.leave_time is not None:
        parts.append(f"leaves {clock.moment(target.leave_time.timestamp())}")
    return "target: " + ", ".join(parts)


def _table_header(view: View, soc: bool, clock: _Clock) -> str:
    price = f"{view.currency}/kWh" if view.currency else "price"
    energy = "SoC" if soc else "energy"
    return f"  {'time':<{clock.width}} {price:>9} {'A':>5} {'ph':>2} {'kW':>6} " \
           f"{energy:>11}  binding constraint"


def _row(plan: Plan, e: int, t: int, energy: str, clock: _Clock) -> str:
    p = plan.problem
    price = p.price_import[t]
    price_cell = "–" if np.isnan(price) else f"{price:.3f}"
    amps = plan.current_a[e, t]
    phases = str(int(plan.phases[e, t])) if abs(amps) > 1e-9 else "–"
    target = p.targets[e]
    leaves = "  ← leave time" if target is not None and t == target.deadline_slot else ""
    when = clock.at(p.grid.starts[t])
    return (f"  {when:<{clock.width}} {price_cell:>9} {amps:5.1f} {phases:>2} "
            f"{plan.power_w[e, t] / 1000:6.1f} {energy:>11}  {plan.reasons[e][t]}{leaves}")


def _summary(plan: Plan, e: int, clock: _Clock) -> str:
    """Energy by leave time (or horizon end) and what is still missing then."""
    p = plan.problem
    target, request = p.targets[e], p.tree.evses[e].request.optimizer_target
    deadline = int(plan.deadlines()[e])
    got = float(plan.energy_kwh()[e])
    end = clock.at(p.grid.ends[-1])
    if target is None:
        return f"  by the end of the horizon ({end}): {got:.1f} kWh"
    leave = request.leave_time if request else None
    if leave is not None and leave.timestamp() <= p.grid.starts[0]:
        when = f"leave time {clock.moment(leave.timestamp())} has passed; " \
               f"by the end of the horizon ({end})"
    elif deadline < p.slots:
        when = f"by leave time {clock.at(p.grid.starts[deadline])}"
    else:
        when = f"by the end of the horizon ({end})"
    text = f"  {when}: {got:.1f} kWh"
    if target.energy_kwh is not None:
        short = float(plan.shortfall_kwh()[e])
        text += f" of {target.energy_kwh:.1f} kWh, shortfall {short:.1f} kWh"
        if short >= SHORTFALL_KWH:
            text += " (target missed)"
    soc = _soc_basis(request)
    if soc is not None:
        text += f", SoC {soc[0] + 100.0 * got / soc[1]:.1f} %"
    return text


def render_evse(plan: Plan, evse: int, view: View, symbol: str = "■") -> list[str]:
    """One EVSE: a header with its path and target, the rows that matter, a summary."""
    p = plan.problem
    clock = _Clock.of(plan, view.tz)
    node = p.tree.evses[evse]
    target = node.request.optimizer_target
    path = " › ".join(n.uuid for n in p.tree.path(evse)[:-1])
    soc = _soc_basis(target)
    energy = delivered_kwh(plan)[evse]
    slots, hidden = shown_slots(plan, evse, view.max_rows)
    lines = [f"{symbol} {node.uuid}  (below {path})  {_describe_target(target, clock)}",
             _table_header(view, soc is not None, clock)]
    lines += [_row(plan, evse, t, _energy_cell(energy[t], soc), clock) for t in slots]
    if hidden:
        lines.append(f"  … {hidden} more rows (raise --slots to see them)")
    lines.append(_summary(plan, evse, clock))
    return lines


# -- the terminal chart ------------------------------------------------------------------------


def _columns(plan: Plan, count: int) -> np.ndarray:
    """The slot shown in each chart column (the one at the column's middle)."""
    grid = plan.problem.grid
    start, end = grid.starts[0], grid.ends[-1]
    middles = start + (np.arange(count) + 0.5) * (end - start) / count
    return np.clip(np.searchsorted(grid.starts, middles, side="right") - 1, 0, len(grid) - 1)


def _time_axis(plan: Plan, cols: int, tz: tzinfo) -> str:
    """Local clock labels at whole hours, spaced so they do not collide."""
    grid = plan.problem.grid
    start, end = float(grid.starts[0]), float(grid.ends[-1])
    per_hour = cols * 3600.0 / (end - start)
    step = next((h for h in (1, 2, 3, 4, 6, 12, 24) if h * per_hour >= 7), 24)
    axis = [" "] * (cols + 6)
    moment = math.ceil(start / 900.0) * 900.0  # every zone's whole hour falls on 15 minutes
    while moment < end:
        local = datetime.fromtimestamp(moment, tz)
        if local.minute == 0 and local.hour % step == 0:
            col = _column_of(plan, cols, moment)
            label = local.strftime("%a %d" if step == 24 else "%H:%M")
            if all(c == " " for c in axis[max(0, col - 1): col + len(label) + 1]):
                axis[col: col + len(label)] = label
        moment += 900.0
    return " " * MARGIN + "".join(axis).rstrip()


def _price_strip(plan: Plan, at: np.ndarray, view: View) -> str:
    price = plan.problem.price_import[at]
    finite = price[~np.isnan(price)]
    if finite.size == 0:
        return f"{'price':>7}   none known (give a price file with --prices)"
    low, high = float(finite.min()), float(finite.max())
    span = high - low or 1.0
    strip = "".join(" " if np.isnan(v) else SPARKS[int((v - low) / span * 7.999)] for v in price)
    return f"{'price':>7}  {strip}  {low:.3f}–{high:.3f} {view.currency or ''}/kWh"


def _chart_cells(stack: np.ndarray, limit: np.ndarray, top: float, symbols: str) -> list[list[str]]:
    """Rows of cells from the top down; row r fills when the stack reaches its middle."""
    cells = [[" "] * stack.shape[1] for _ in range(CHART_ROWS + 1)]
    edges = np.cumsum(stack, axis=0)
    for col in range(stack.shape[1]):
        for r in range(CHART_ROWS):
            middle = (r + 0.5) * top / CHART_ROWS
            layer = int(np.searchsorted(edges[:, col], middle, side="right"))
            if layer < len(symbols):
                cells[CHART_ROWS - r][col] = symbols[layer]
        if np.isfinite(limit[col]):
            r = min(CHART_ROWS, round(limit[col] / top * CHART_ROWS))
            if cells[CHART_ROWS - r][col] == " ":
                cells[CHART_ROWS - r][col] = "─"
    return cells


def render_chart(plan: Plan, view: View) -> list[str]:
    """Stacked site power [kW] per slot, the site limit, the price strip and departures."""
    cols = max(24, view.width - MARGIN - 20)
    at = _columns(plan, cols)
    series = chart_series(plan, len(SYMBOLS))
    kw = plan.power_w.clip(min=0)[:, at] / 1000.0
    stack = np.stack([kw[rows].sum(axis=0) for _, rows in series])
    limit = site_limit_w(plan)[at] / 1000.0
    finite = limit[np.isfinite(limit)]
    top = max(float(stack.sum(axis=0).max()), float(finite.max()) if finite.size else 0.0, 1.0)
    symbols = SYMBOLS[: len(series)]
    cells = _chart_cells(stack, limit, top, symbols)
    marks = {_column_of(plan, cols, s) for s, _ in departures(plan)}
    return [
        *_chart_legend(plan, series, symbols, finite),
        *_plot_rows(cells, top, marks),
        _time_axis(plan, cols, view.tz),
        _price_strip(plan, at, view),
        *_departure_legend(plan, view),
    ]


def _column_of(plan: Plan, cols: int, seconds: float) -> int:
    grid = plan.problem.grid
    start, end = float(grid.starts[0]), float(grid.ends[-1])
    return min(cols - 1, int((seconds - start) / (end - start) * cols))


def _plot_rows(cells: list[list[str]], top: float, marks: set[int]) -> list[str]:
    """The cells with a kW scale on the left, leave-time marks and the time axis line."""
    lines = []
    for i, row in enumerate(cells):
        level = (CHART_ROWS - i) * top / CHART_ROWS
        label = f"{level:7.1f}" if i in (0, CHART_ROWS // 2) else " " * 7
        text = "".join("┊" if c == " " and col in marks else c for col, c in enumerate(row))
        lines.append(f"{label} ┤{text}")
    cols = len(cells[0])
    lines.append(f"{0.0:7.1f} ┼" + "".join("┴" if c in marks else "─" for c in range(cols)))
    return lines


def _chart_legend(plan: Plan, series: list[tuple[str, np.ndarray]], symbols: str,
                  limit_kw: np.ndarray) -> list[str]:
    start = plan.problem.grid.starts[0]
    hours = (plan.problem.grid.ends[-1] - start) / 3600.0
    if not limit_kw.size:
        cap = "no site limit"
    elif limit_kw.min() == limit_kw.max():
        cap = f"─ site limit {limit_kw.min():.1f} kW"
    else:
        cap = f"─ site limit {limit_kw.min():.1f}–{limit_kw.max():.1f} kW"
    keys = "  ".join(f"{s} {name}" for s, (name, _) in zip(symbols, series, strict=True))
    return [f"Site power [kW] over {hours:g} h, stacked:  {keys}", f"{cap}   ┊ leave time"]


def _departure_legend(plan: Plan, view: View) -> list[str]:
    found = departures(plan)
    if not found:
        return []
    clock = _Clock.of(plan, view.tz)
    shown = [f"{clock.at(s)} {departure_label(uuids)}"
             for s, uuids in found[:MAX_DEPARTURE_LABELS]]
    more = f" … +{len(found) - MAX_DEPARTURE_LABELS} more" if len(found) > len(shown) else ""
    return [f"{'leaves':>7}  " + " · ".join(shown) + more]


# -- per feeder (big sites) ----------------------------------------------------------------


def render_feeders(plan: Plan) -> list[str]:
    """One line per feeder below the root: its EVSEs' energy and shortfall, its peak power
    and the peak current on its busiest phase against the caps."""
    p = plan.problem
    feeders = [n for n in p.tree if n.parent == p.tree.root.index and not n.is_evse]
    if not feeders:
        return []
    load = planned_phase_load_a(plan)
    energy, short = plan.energy_kwh(), plan.shortfall_kwh()
    kw = plan.power_w.clip(min=0) / 1000.0
    lines = [f"{'feeder':<16} {'EVSEs':>5} {'planned':>10} {'short':>9} {'peak':>8} "
             f"{'of':>8}  busiest phase at its peak"]
    for node in feeders:
        rows = slice(node.evse_lo, node.evse_hi)
        power = kw[rows].sum(axis=0)
        cap_w = p.imp[node.index].power_w / 1000.0
        amps = load[node.index]  # [slot, phase]
        slot, phase = np.unravel_index(int(amps.argmax()), amps.shape)
        cap_a = p.imp[node.index].current_a[slot, phase]
        of_a = "" if not np.isfinite(cap_a) else f" of {cap_a:.0f} A"
        of_w = "–" if not np.isfinite(cap_w).any() else f"{np.nanmin(cap_w):.1f} kW"
        lines.append(
            f"{node.uuid:<16.16} {node.evse_hi - node.evse_lo:>5} "
            f"{energy[rows].sum():6.1f} kWh {short[rows].sum():5.1f} kWh "
            f"{power.max():5.1f} kW {of_w:>8}  L{phase + 1} {amps[slot, phase]:.1f} A{of_a}")
    return lines


# -- totals and the whole page ---------------------------------------------------------------


def render_meta(plan: Plan, view: View) -> list[str]:
    """How the plan was made and what it adds up to."""
    p = plan.problem
    grid_kwh = float((plan.power_w.clip(min=0) * p.grid.hours).sum() / 1000.0)
    known = ~np.isnan(p.price_import)
    if not known.any():
        cost = "unknown (no prices)"
    else:
        cost = f"{plan.cost():.2f} {view.currency or ''}".rstrip()
        if not known.all():
            cost += " (slots without a price count as 0)"
    missing = float(plan.shortfall_kwh().sum())
    lines = [f"plan: {plan.method}"]
    lines += [f"note: {note}" for note in (*view.notes, *plan.notes)]
    lines.append(f"total energy from the grid: {grid_kwh:.1f} kWh over the horizon; "
                 f"cost {cost}; shortfall at leave times {missing:.1f} kWh")
    return lines


def _title(plan: Plan, view: View) -> str:
    grid = plan.problem.grid
    start = datetime.fromtimestamp(float(grid.starts[0]), view.tz)
    end = datetime.fromtimestamp(float(grid.ends[-1]), view.tz)
    utc = format_timestamp(datetime.fromtimestamp(float(grid.starts[0]), UTC), whole_seconds=True)
    return (f"{view.title}: plan for {_count(plan.problem.evse_count)}, {plan.problem.slots} slots "
            f"from {start:%a %d %b %Y %H:%M %Z} ({utc}) to {end:%a %d %b %H:%M %Z}"
            f"; times in {view.tz}")


def render_preview(plan: Plan, view: View) -> str:
    """The whole text: title, one table per EVSE, the chart, the plan's meta."""
    series = chart_series(plan, len(SYMBOLS))
    symbol = {int(rows[0]): s for s, (_, rows) in zip(SYMBOLS, series, strict=False)
              if len(rows) == 1}
    lines = [_title(plan, view), ""]
    if plan.problem.evse_count > FEEDER_SUMMARY_EVSES:
        lines += [*render_feeders(plan), ""]
    for e in range(plan.problem.evse_count):
        lines += [*render_evse(plan, e, view, symbol.get(e, "■")), ""]
    lines += [*render_chart(plan, view), ""]
    lines += render_meta(plan, view)
    return "\n".join(lines) + "\n"
