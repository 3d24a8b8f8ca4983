"""The instant allocator: share every node's limit among its EVSEs, max-min fairly, for one slot.

It is the realtime path (no solver) and the fallback whenever no plan exists. Steps:

1. **Admission** (``admission.py``). An EVSE gets 0 A or at least its minimum current. If
   not every EVSE that wants power fits at its minimum, EVSEs are admitted greedily in
   rotation order, so who waits changes with the rotation counter instead of starving the
   same EVSE forever. A switchable EVSE that does not fit on all its phases is tried on one
   phase.
2. **Water-filling.** From the minimum, all admitted EVSEs rise at the same rate (amperes per
   phase); an EVSE stops when it reaches its own cap or a node on its path becomes tight on
   one of the phases it uses or on power. Sums below a node are prefix-sum differences.

Currents are per grid phase, so three one-phase cars on L1, L2 and L3 each get the full fuse.
Watt caps and ampere caps hold side by side. EVSEs that may only export (their import cap is
0 and their export cap is not) are filled first, and their export nets against import below
the same nodes. Every result names what bound it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from energytree.admission import (
    ENTRY_MARGIN_A,
    EPS,
    Fill,
    admit,
    admit_with_margin,
    fits,
    misfits,
)
from energytree.limits import PHASES
from energytree.problem import Problem, phase_usage
from energytree.tree import subtree_sums

__all__ = ["LiveCap", "SlotAllocation", "allocate_slot", "live_positions", "node_caps"]

NOT_ADMITTED = "waiting: not enough capacity for the minimum current (rotation)"
NO_MARGIN = (f"waiting: the minimum current fits, but not with {ENTRY_MARGIN_A:g} A to spare "
             "(hysteresis)")


@dataclass(frozen=True)
class LiveCap:
    """An extra cap on a node for this slot only (e.g. what the grid meter leaves) [A], [W]."""

    node_index: int
    current_a: np.ndarray
    power_w: float
    label: str


@dataclass(frozen=True)
class SlotAllocation:
    """Per EVSE: signed current per phase [A], phases used, signed power [W], and why."""

    current_a: np.ndarray
    phases: np.ndarray
    power_w: np.ndarray
    reasons: list[str]


def _water_fill(fill: Fill, admitted: np.ndarray, node_reason: Callable[[int, int], str],
                reasons: list[str]) -> np.ndarray:
    """Raise every admitted EVSE at the same rate until it or a node on its path is tight."""
    top = np.where(admitted, np.maximum(fill.upper, fill.lower), 0.0)
    if fits(fill, subtree_sums(top[:, None] * fill.usage, fill.lo, fill.hi),
             subtree_sums(top * fill.watts_per_amp, fill.lo, fill.hi)):
        for e in np.nonzero(admitted)[0]:  # everybody reaches their own cap (e.g. the plan's)
            reasons[e] = "own"
        return top
    x = np.where(admitted, fill.lower, 0.0)
    rising = admitted & (fill.upper - x > EPS)
    for e in np.nonzero(admitted & ~rising)[0]:
        reasons[e] = "own"
    while rising.any():
        load_a = subtree_sums(x[:, None] * fill.usage, fill.lo, fill.hi)
        load_w = subtree_sums(x * fill.watts_per_amp, fill.lo, fill.hi)
        rate_a = subtree_sums(rising[:, None] * fill.usage, fill.lo, fill.hi)
        rate_w = subtree_sums(rising * fill.watts_per_amp, fill.lo, fill.hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step_a = np.where(rate_a > 0, (fill.cap_a - load_a) / rate_a, np.inf)
            step_w = np.where(rate_w > 0, (fill.cap_w - load_w) / rate_w, np.inf)
        step_e = np.where(rising, fill.upper - x, np.inf)
        step = max(0.0, min(step_a.min(initial=np.inf), step_w.min(initial=np.inf),
                            step_e.min()))
        x = np.where(rising, x + step, x)
        frozen = rising & (fill.upper - x <= EPS)
        for e in np.nonzero(frozen)[0]:
            reasons[e] = "own"
        tight_a = (rate_a > 0) & (fill.cap_a - load_a - step * rate_a <= EPS)
        tight_w = (rate_w > 0) & (fill.cap_w - load_w - step * rate_w <= EPS)
        for k, phase in zip(*np.nonzero(tight_a), strict=True):
            span = slice(fill.lo[k], fill.hi[k])
            hit = rising[span] & (fill.usage[span, phase] > 0) & ~frozen[span]
            for e in np.nonzero(hit)[0] + fill.lo[k]:
                reasons[e] = node_reason(k, phase)
            frozen[span] |= hit
        for k in np.nonzero(tight_w)[0]:
            span = slice(fill.lo[k], fill.hi[k])
            hit = rising[span] & ~frozen[span]
            for e in np.nonzero(hit)[0] + fill.lo[k]:
                reasons[e] = node_reason(k, PHASES)
            frozen[span] |= hit
        if not frozen.any():  # numerical safety: a step that froze nothing ends the fill
            break
        rising &= ~frozen
    return x


def _node_reasons(problem: Problem, slot: int, export: bool,
                  live: Sequence[tuple[int, LiveCap]]) -> Callable[[int, int], str]:
    """What a tight node constraint is called: its source, the field and the phase."""
    d = int(export)
    named: dict[tuple[int, int], str] = {}  # many EVSEs meet the same node in a slot

    def reason(k: int, phase: int) -> str:
        text = named.get((k, phase))
        if text is None:
            text = named[(k, phase)] = _name(k, phase)
        return text

    def _name(k: int, phase: int) -> str:
        lim = problem.limits(problem.inner[k], export)
        if phase == PHASES:
            label, value = str(lim.power_source[slot]), problem.node_cap_w[d][k, slot]
        else:
            label = str(lim.current_source[slot, phase])
            value = problem.node_cap_a[d][k, slot, phase]
        for pos, cap in live:  # the tightest of the node's own and the live caps names it
            live_value = cap.power_w if phase == PHASES else cap.current_a[phase]
            if pos == k and live_value < value:
                label, value = cap.label, live_value
        field = "total_power_W" if phase == PHASES else f"ac_max_current_A L{phase + 1}"
        return f"{label}: {field}"

    return reason


def _own_reasons(problem: Problem, evses: list[int], slot: int, export: bool,
                 upper_labels: list[str | None], capped_by_extra: np.ndarray) -> list[str]:
    """Each EVSE's own cap that binds: the extra cap, its power cap, or its smallest phase
    cap (one read of the limits table for all of them)."""
    if not evses:
        return []
    table = (problem.exp if export else problem.imp).all
    nodes = problem.tree.evse_nodes[evses]
    current = table.current_a[nodes, slot]  # [m, 3]
    phases = np.maximum(problem.max_phases[evses, slot].astype(int), 1)
    by_power = (table.power_w[nodes, slot] / (problem.voltage_v * phases)
                < current.min(axis=1)).tolist()
    power_source = table.power_source[nodes, slot].tolist()
    current_source = table.current_source[nodes, slot, current.argmin(axis=1)].tolist()
    texts = []
    for i, e in enumerate(evses):
        if capped_by_extra[e] and upper_labels[e]:
            texts.append(f"{upper_labels[e]}: ac_max_current_A")
        elif by_power[i]:
            texts.append(f"{power_source[i]}: total_power_W")
        else:
            texts.append(f"{current_source[i]}: ac_max_current_A")
    return texts


def allocate_slot(
    problem: Problem,
    slot: int,
    *,
    rotation: int = 0,
    evse_cap_a: np.ndarray | None = None,
    evse_cap_label: str | None = None,
    live_caps: Sequence[LiveCap] = (),
    phases: np.ndarray | None = None,
    fixed: SlotAllocation | None = None,
    hold_phases: bool = False,
    served: np.ndarray | None = None,
) -> SlotAllocation:
    """Allocate slot ``slot`` of ``problem``.

    ``evse_cap_a`` adds a per-EVSE cap (e.g. the planned value), ``live_caps`` extra node caps,
    ``phases`` a phase count per EVSE (kept with ``hold_phases``: no drop to one phase). EVSEs
    with a non-NaN current in ``fixed`` keep that allocation; the rest share what it leaves.
    ``served`` (the live tick: who has a current now) makes the others join only with room to
    spare (``admission.admit_with_margin``).
    """
    n = problem.evse_count
    volts = problem.voltage_v
    live = live_positions(problem, live_caps)
    reasons = ["" for _ in range(n)]
    max_phases = problem.max_phases[:, slot].astype(int)
    chosen = np.clip(phases, problem.min_phases[:, slot], max_phases) if phases is not None \
        else max_phases
    chosen = np.maximum(chosen, 1)
    paths = problem.inner_paths
    evse_cap_a, cap_labels = _evse_caps(problem, live_caps, chosen, evse_cap_a, evse_cap_label)
    order = np.roll(np.arange(n), -(rotation % n)) if n else np.arange(0)
    signed = np.zeros(n)
    used_phases = chosen.copy()

    export_x, export_usage, export_wpa = np.zeros(n), np.zeros((n, PHASES)), np.zeros(n)
    for export in (True, False):
        wanting = _wanting(problem, slot, export)
        if fixed is not None:
            wanting &= np.isnan(fixed.current_a)
        if not wanting.any():  # (often export) nobody to fill: nothing changes
            continue
        cap_a, cap_w = node_caps(problem, slot, export, live)
        if not export:  # export below a node nets against import below it
            cap_a = cap_a + subtree_sums(export_x[:, None] * export_usage,
                                          problem.inner_lo, problem.inner_hi)
            cap_w = cap_w + subtree_sums(export_x * export_wpa,
                                          problem.inner_lo, problem.inner_hi)
        if fixed is not None:
            cap_a, cap_w = _minus_fixed(problem, fixed, export, cap_a, cap_w)
        fill, one_phase, extra = _direction_fill(problem, slot, export, chosen, cap_a, cap_w,
                                                 evse_cap_a, hold_phases)
        candidates = wanting & (fill.upper > EPS)
        if served is None:
            admitted, held = admit(fill, candidates, order, paths, one_phase), None
        else:
            admitted, held = admit_with_margin(fill, candidates, order, paths, one_phase,
                                               served)
        node_reason = _node_reasons(problem, slot, export, live)
        x = _water_fill(fill, admitted, node_reason, reasons)
        wanting = np.nonzero(candidates)[0].tolist()
        got, short = admitted.tolist(), (fill.upper + EPS < fill.lower).tolist()
        at_own = [e for e in wanting if (short[e] if not got[e] else reasons[e] == "own")]
        own = dict(zip(at_own, _own_reasons(problem, at_own, slot, export, cap_labels, extra),
                       strict=True))
        misfit = misfits(fill, one_phase, [e for e in wanting if not got[e] and not short[e]],
                          paths)
        for e in wanting:
            if not got[e] and short[e]:
                reasons[e] = f"{own[e]} below the minimum current"
            elif held is not None and held[e]:
                reasons[e] = NO_MARGIN
            elif not got[e] and (where := misfit[e]):
                reasons[e] = f"{node_reason(*where)} below the minimum current"
            elif not got[e]:
                reasons[e] = NOT_ADMITTED
            elif reasons[e] == "own":
                reasons[e] = own[e]
        active = admitted & (x > EPS)
        used_phases = np.where(active, fill.usage.sum(axis=1).astype(int), used_phases)
        if export:
            export_x, export_usage, export_wpa = x, fill.usage, fill.watts_per_amp
            signed = np.where(active, -x, signed)
        else:
            signed = np.where(active, x, signed)
    if fixed is not None:
        keep = ~np.isnan(fixed.current_a)
        signed = np.where(keep, fixed.current_a, signed)
        used_phases = np.where(keep, fixed.phases, used_phases)
        for e in np.nonzero(keep)[0]:
            reasons[e] = fixed.reasons[e]
    _explain_idle(problem, slot, signed, reasons, evse_cap_a, cap_labels)
    power = signed * used_phases * volts
    return SlotAllocation(current_a=signed, phases=used_phases, power_w=power, reasons=reasons)


def live_positions(problem: Problem, live_caps: Sequence[LiveCap]
                   ) -> list[tuple[int, LiveCap]]:
    """Each live cap with the position of its node among ``problem.inner``."""
    if not live_caps:
        return []
    position = {node.index: k for k, node in enumerate(problem.inner)}
    return [(position[c.node_index], c) for c in live_caps if c.node_index in position]


def node_caps(problem: Problem, slot: int, export: bool,
              live: Sequence[tuple[int, LiveCap]]) -> tuple[np.ndarray, np.ndarray]:
    """Every inner node's caps in one direction, live caps included: [K, 3] A, [K] W."""
    d = int(export)
    cap_a = problem.node_cap_a[d][:, slot].copy()
    cap_w = problem.node_cap_w[d][:, slot].copy()
    for k, cap in live:
        cap_a[k] = np.minimum(cap_a[k], cap.current_a)
        cap_w[k] = min(cap_w[k], cap.power_w)
    return cap_a, cap_w


def _evse_caps(problem: Problem, live_caps: Sequence[LiveCap], phases: np.ndarray,
               extra: np.ndarray | None, label: str | None
               ) -> tuple[np.ndarray | None, list[str | None]]:
    """Fold live caps on EVSE nodes into the per-EVSE caps, each with its own label."""
    labels: list[str | None] = [label] * problem.evse_count
    if not live_caps:
        return extra, labels
    evse_pos = {node.index: e for e, node in enumerate(problem.tree.evses)}
    mine = [(evse_pos[c.node_index], c) for c in live_caps if c.node_index in evse_pos]
    if not mine:
        return extra, labels
    caps = np.full(problem.evse_count, np.inf) if extra is None else np.array(extra, float)
    for e, cap in mine:
        amps = min(float(cap.current_a.min()), cap.power_w / (problem.voltage_v * phases[e]))
        if amps < caps[e]:
            caps[e], labels[e] = amps, cap.label
    return caps, labels


def _minus_fixed(problem: Problem, fixed: SlotAllocation, export: bool, cap_a: np.ndarray,
                 cap_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node caps left after the fixed allocations in this direction."""
    amps = np.nan_to_num(fixed.current_a)
    amps = np.where(amps < 0, -amps, 0.0) if export else np.where(amps > 0, amps, 0.0)
    usage = phase_usage(problem.phase_map, np.maximum(fixed.phases, 1))
    cap_a = cap_a - subtree_sums(amps[:, None] * usage, problem.inner_lo, problem.inner_hi)
    cap_w = cap_w - subtree_sums(amps * fixed.phases * problem.voltage_v, problem.inner_lo,
                                  problem.inner_hi)
    return cap_a, cap_w


def _direction_fill(problem: Problem, slot: int, export: bool, phases: np.ndarray,
                    cap_a: np.ndarray, cap_w: np.ndarray, extra_cap: np.ndarray | None,
                    hold_phases: bool = False) -> tuple[Fill, Fill | None, np.ndarray]:
    d = int(export)
    volts = problem.voltage_v
    own_a = problem.evse_cap_a[d][:, slot]
    own_w = problem.evse_cap_w[d][:, slot]
    extra = np.full(problem.evse_count, np.inf) if extra_cap is None else np.asarray(extra_cap)
    lower = (problem.export_min_current_a if export else problem.min_current_a)[:, slot]

    def variant(ph: np.ndarray) -> Fill:
        upper = np.minimum(np.minimum(own_a, own_w / (volts * ph)), extra)
        return Fill(lower.copy(), upper, phase_usage(problem.phase_map, ph), ph * volts,
                     cap_a, cap_w, problem.inner_lo, problem.inner_hi)

    fill = variant(phases)
    capped_by_extra = extra < np.minimum(own_a, own_w / (volts * phases)) - EPS
    one_phase = None
    can_drop = problem.switchable & (problem.min_phases[:, slot] <= 1) & (phases > 1)
    if can_drop.any() and not hold_phases:
        one_phase = variant(np.ones_like(phases))
        one_phase.upper[~can_drop] = -np.inf
    return fill, one_phase, capped_by_extra


def _wanting(problem: Problem, slot: int, export: bool) -> np.ndarray:
    """EVSEs that want power in this direction: import is preferred over export."""
    imp_open = (problem.evse_cap_a[0][:, slot] > EPS) & (problem.evse_cap_w[0][:, slot] > EPS)
    exp_open = (problem.evse_cap_a[1][:, slot] > EPS) & (problem.evse_cap_w[1][:, slot] > EPS)
    # a node above that allows no import (e.g. a negative setpoint on the external-limits
    # node, as EVerest's fixture 8 sends) turns the EVSEs below it to export
    imp_open &= ~_below(problem, _closed_nodes(problem, slot))
    direction = ~imp_open & exp_open if export else imp_open
    return problem.wants_power & direction


def _closed_nodes(problem: Problem, slot: int) -> np.ndarray:
    """Inner nodes that allow no import at all in ``slot``."""
    return (problem.node_cap_w[0][:, slot] <= EPS) | np.all(
        problem.node_cap_a[0][:, slot] <= EPS, axis=1)


def _below(problem: Problem, nodes: np.ndarray) -> np.ndarray:
    """Per EVSE: is it below any of the marked inner nodes? (a difference array, no loop)"""
    marks = np.zeros(problem.evse_count + 1)
    np.add.at(marks, problem.inner_lo[nodes], 1.0)
    np.add.at(marks, problem.inner_hi[nodes], -1.0)
    return np.cumsum(marks)[:-1] > 0


def _explain_idle(problem: Problem, slot: int, signed: np.ndarray, reasons: list[str],
                  extra_cap: np.ndarray | None, extra_labels: list[str | None]) -> None:
    """Why each EVSE without a reason yet gets nothing (its own labels read in one go)."""
    idle = [e for e, reason in enumerate(reasons) if not reason]
    if not idle:
        return
    closed = _closed_nodes(problem, slot)
    under_closed = _below(problem, closed)
    own_labels = problem.imp.all.current_source[problem.tree.evse_nodes[idle], slot, 0]
    wants = problem.wants_power[idle].tolist()
    shut = [False] * len(idle) if extra_cap is None else (extra_cap[idle] <= EPS).tolist()
    for e, own_label, wanted, zero, below in zip(idle, own_labels.tolist(), wants, shut,
                                                 under_closed[idle].tolist(), strict=True):
        node = problem.tree.evses[e]
        if not wanted:
            reasons[e] = f"{node.uuid}: no power wanted (state {node.request.evse_state})"
        elif zero and extra_labels[e]:
            reasons[e] = f"{extra_labels[e]}: 0 A"
        else:
            label = own_label
            for k in problem.inner_paths[e] if below else ():  # it names itself
                if not closed[k]:
                    continue
                lim = problem.limits(problem.inner[k])
                if problem.node_cap_w[0][k, slot] <= EPS:
                    reasons[e] = f"{lim.power_source[slot]}: no import allowed"
                label = lim.current_source[slot, 0]
                break
            reasons[e] = reasons[e] or f"{label}: no import allowed"
