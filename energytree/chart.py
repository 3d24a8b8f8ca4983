"""The plan as a figure (PNG or SVG): stacked EVSE power, the site limit, prices, departures.

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

from energytree.plan import Plan
from energytree.render import View, chart_series, departure_label, departures, site_limit_w

__all__ = ["MAX_SERIES", "build_figure", "write_chart"]

# tab20 without its two reds, which belong to the price curve; bigger sites stack per branch
PALETTE = [c for k, c in enumerate(colormaps["tab20"].colors) if k not in (6, 7)]
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


def build_figure(plan: Plan, view: View) -> Figure:
    """The figure of a plan, on an Agg canvas."""
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    x = _times(plan, view)
    _draw_power(ax, plan, x)
    twin = _draw_prices(ax, plan, x, view)
    _draw_departures(ax, plan, view)
    locator = mdates.AutoDateLocator(tz=view.tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=view.tz))
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel(f"local time ({view.tz})")
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
