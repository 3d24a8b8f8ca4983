"""The plan as a figure (PNG or SVG): stacked EVSE power, the site limit, prices, departures,
shortfalls, and below it the root's planned current per phase against its per-phase limits.

Drawn on matplotlib's ``Agg`` canvas through the object API (no ``pyplot``), so nothing
opens a window, no global state changes and it runs on machines without a display.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from energytree.app.render import View, chart_series, departure_label
from energytree.plan import Plan
from energytree.planfigures import (
    binding_phase,
    departures,
    planned_phase_load_a,
    shortfalls,
    site_limit_w,
)

__all__ = ["MAX_SERIES", "build_figure", "write_chart"]

# tab20's strong colours first, then their light partners, without the reds (the price
# curve's): neighbouring layers never look like a pair; bigger sites stack per branch
_TAB20 = colormaps["tab20"].colors
PALETTE = [_TAB20[k] for k in (*range(0, 20, 2), *range(1, 20, 2)) if k not in (6, 7)]
PHASE_STYLES = ("-", "--", ":")
BINDS_WITHIN_A = 0.5  # a phase this close to its cap is the one that binds [A]
MAX_SERIES = len(PALETTE)
MAX_LEGEND = 12


def _times(plan: Plan, view: View) -> list[datetime]:
    """Slot boundaries as local datetimes (T + 1 of them) for a step plot."""
    grid = plan.problem.grid
    edges = np.append(grid.starts, grid.ends[-1])
    return [datetime.fromtimestamp(float(s), view.tz) for s in edges]


def _step(values: np.ndarray) -> np.ndarray:
    """Repeat the last slot's value so a 'post' step covers the whole last slot."""
    return np.append(values, values[-1])


def _draw_power(ax: Axes, plan: Plan, x: list[datetime]) -> None:
    series = chart_series(plan, MAX_SERIES)
    kw = plan.power_w.clip(min=0) / 1000.0
    base = np.zeros(plan.problem.slots)
    for k, (name, rows) in enumerate(series):
        top = base + kw[rows].sum(axis=0)
        ax.fill_between(x, _step(base), _step(top), step="post", color=PALETTE[k],
                        linewidth=0, label=name)
        base = top
    limit = site_limit_w(plan) / 1000.0
    finite = np.isfinite(limit)
    if finite.any():
        ax.step(x, _step(np.where(finite, limit, np.nan)), where="post", color="black",
                linestyle="--", linewidth=1.2, label="site limit")
    peak = max(float(base.max()), float(limit[finite].max()) if finite.any() else 0.0, 1.0)
    ax.set_ylim(0, peak * 1.1)  # room above the limit line for the departure labels
    ax.set_ylabel("power [kW]")


def _draw_prices(ax: Axes, plan: Plan, x: list[datetime], view: View) -> Axes | None:
    """Prices on a second axis; none when no slot has a price."""
    price = plan.problem.price_import
    if np.isnan(price).all():
        return None
    twin = ax.twinx()
    twin.step(x, _step(price), where="post", color="tab:red", linewidth=1.5, label="price")
    twin.set_ylabel(f"price [{view.currency or ''}/kWh]".replace("[/", "["), color="tab:red")
    twin.tick_params(axis="y", colors="tab:red")
    return twin


def _draw_departures(ax: Axes, plan: Plan, view: View) -> None:
    """One dotted line per distinct leave time, labelled with the EVSEs leaving then."""
    for seconds, uuids in departures(plan):
        when = datetime.fromtimestamp(seconds, view.tz)
        ax.axvline(when, color="dimgray", linestyle=":", linewidth=1)
        ax.annotate(departure_label(uuids), xy=(mdates.date2num(when), 1.0),
                    xycoords=("data", "axes fraction"), xytext=(2, -4),
                    textcoords="offset points", rotation=90, va="top", fontsize=7,
                    color="dimgray")


def _draw_shortfalls(ax: Axes, plan: Plan, view: View) -> None:
    """A red marker at each missed target's leave time, with what is missing."""
    for seconds, uuid, kwh in shortfalls(plan):
        when = mdates.date2num(datetime.fromtimestamp(seconds, view.tz))
        ax.plot([when], [0.0], marker="v", color="tab:red", markersize=9, clip_on=False,
                transform=ax.get_xaxis_transform())
        ax.annotate(f"{uuid} short {kwh:.1f} kWh", xy=(when, 0.0),
                    xycoords=("data", "axes fraction"), xytext=(-4, 6),
                    textcoords="offset points", ha="right", fontsize=7, color="tab:red")


def _draw_phases(ax: Axes, plan: Plan, x: list[datetime]) -> None:
    """The root's planned current per phase against its caps; the binding phase named."""
    p = plan.problem
    root = p.tree.root
    load = planned_phase_load_a(plan)[root.index]
    cap = p.imp[root.index].current_a
    for k, style in enumerate(PHASE_STYLES):
        ax.step(x, _step(load[:, k]), where="post", color=PALETTE[k], linestyle=style,
                linewidth=1.6, label=f"L{k + 1} planned")
        if np.isfinite(cap[:, k]).any():
            ax.step(x, _step(np.where(np.isfinite(cap[:, k]), cap[:, k], np.nan)), where="post",
                    color="black", linestyle=style, linewidth=1.0, label=f"L{k + 1} limit")
    _mark_binding(ax, x, cap, load)
    top = np.nanmax(np.where(np.isfinite(cap), cap, np.nan), initial=0.0)
    ax.set_ylim(0, max(float(load.max()), float(top), 1.0) * 1.2)
    ax.set_ylabel(f"{root.uuid} [A per phase]")
    ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=7, ncols=2)
    ax.grid(True, axis="y", alpha=0.3)


def _mark_binding(ax: Axes, x: list[datetime], cap: np.ndarray, load: np.ndarray) -> None:
    """Name the phase at its cap wherever that changes, labels at least 1/12 of the axis apart."""
    phase = binding_phase(cap, load)
    rows = np.arange(len(phase))
    at_cap = (phase >= 0) & (cap[rows, phase] - load[rows, phase] <= BINDS_WITHIN_A)
    shown = np.where(at_cap, phase, -1)
    gap = (x[-1] - x[0]) / 12
    last: datetime | None = None
    for t in np.nonzero(np.diff(shown, prepend=-2))[0]:
        if shown[t] >= 0 and (last is None or x[t] - last >= gap):
            ax.annotate(f"▲L{shown[t] + 1} at its limit", xy=(mdates.date2num(x[t]), 1.0),
                        xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=7)
            last = x[t]


def _date_axis(ax: Axes, x: list[datetime], view: View) -> None:
    """Local clock times, and the date at every midnight and at the first tick."""
    locator = mdates.AutoDateLocator(tz=view.tz)
    formatter = mdates.ConciseDateFormatter(locator, tz=view.tz, show_offset=False)
    formatter.zero_formats = ["", "%Y", "%a %d %b", "%a %d %b", "%H:%M", "%H:%M"]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlim(x[0], x[-1])
    first, last = x[0], x[-1]
    span = f"{first:%a %d %b %Y %H:%M} – {last:%a %d %b %Y %H:%M}"
    ax.set_xlabel(f"local time ({view.tz}): {span}")


def build_figure(plan: Plan, view: View) -> Figure:
    """The figure of a plan, on an Agg canvas."""
    figure = Figure(figsize=(12, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax, phases = figure.subplots(2, 1, sharex=True, height_ratios=(2.2, 1.0))
    x = _times(plan, view)
    _draw_power(ax, plan, x)
    twin = _draw_prices(ax, plan, x, view)
    _draw_departures(ax, plan, view)
    _draw_shortfalls(ax, plan, view)
    _draw_phases(phases, plan, x)
    _date_axis(phases, x, view)
    ax.tick_params(labelbottom=False)
    ax.set_title(f"{view.title}: {plan.problem.evse_count} EVSEs, plan by {plan.method}")
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if len(handles) <= MAX_LEGEND + 2:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return figure


def write_chart(plan: Plan, view: View, path: Path, fmt: str) -> None:
    """Save the figure as ``fmt`` ('png' or 'svg'); the same plan gives the same bytes.

    An SVG would otherwise carry the date and random element ids.
    """
    metadata = {"Date": None} if fmt == "svg" else None
    figure = build_figure(plan, view)
    with rc_context({"svg.hashsalt": "energytree"}):
        figure.savefig(path, format=fmt, dpi=110, metadata=metadata)
