"""Admission, the allocator's first step: who gets at least the minimum current in a slot.

If every EVSE that wants power fits at its minimum, all are admitted. Otherwise they are
admitted greedily in rotation order (EVSEs with a real minimum first), each on all its phases
or, if switchable, on one, so that who waits changes with the rotation. In the live tick,
while a meter moves the budget, an EVSE joins those served only with room to spare
(``admit_with_margin``). Each EVSE touches the few nodes on its path, so the greedy pass
keeps its sums in Python floats: the same arithmetic as on arrays, without numpy calls per
EVSE and node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from energytree.limits import PHASES
from energytree.tree import subtree_sums

__all__ = ["ENTRY_MARGIN_A", "EPS", "MIN_ROOM_A", "Fill", "admit", "admit_in_order",
           "admit_with_margin", "fits", "misfits"]

EPS = 1e-7
MIN_ROOM_A = 0.01  # [A] the resolution of a granted limit
# [A] room beyond its minimum an EVSE needs to join those already served: a budget that
# wavers by a few hundredths of an ampere at the edge of one more minimum would otherwise
# start and stop a car (and cut the others for it) tick after tick
ENTRY_MARGIN_A = 0.5


@dataclass
class Fill:
    """The state of one direction's fill; arrays are per EVSE unless noted."""

    lower: np.ndarray
    upper: np.ndarray
    usage: np.ndarray  # [N, 3] 1 where the EVSE draws on that grid phase
    watts_per_amp: np.ndarray
    cap_a: np.ndarray  # [K, 3]
    cap_w: np.ndarray  # [K]
    lo: np.ndarray
    hi: np.ndarray


def fits(fill: Fill, load_a: np.ndarray, load_w: np.ndarray) -> bool:
    """Do these loads ([K, 3] A, [K] W) stay within every node's caps?"""
    return bool(np.all(load_a <= fill.cap_a + EPS) and np.all(load_w <= fill.cap_w + EPS))


def admit(fill: Fill, candidates: np.ndarray, order: np.ndarray, paths: list[np.ndarray],
           one_phase: Fill | None) -> np.ndarray:
    """Who gets at least the minimum current; greedy in ``order`` when not everybody fits."""
    lower = np.where(candidates, fill.lower, 0.0)
    load_a = subtree_sums(lower[:, None] * fill.usage, fill.lo, fill.hi)
    load_w = subtree_sums(lower * fill.watts_per_amp, fill.lo, fill.hi)
    room = fill.upper + EPS >= fill.lower
    # a switchable EVSE with a minimum of ~0 A "fits" on a phase that has no room left; the
    # greedy pass below moves it to one phase then, so only skip it when nobody needs that
    droppable = np.zeros_like(candidates) if one_phase is None else one_phase.upper > -np.inf
    if (np.all(room[candidates]) and fits(fill, load_a, load_w)
            and not np.any(candidates & droppable & (fill.lower < MIN_ROOM_A))):
        return candidates.copy()
    # EVSEs with a real minimum first: a ~0 A minimum fits anywhere until the others come
    order = np.concatenate([order[fill.lower[order] >= MIN_ROOM_A],
                            order[fill.lower[order] < MIN_ROOM_A]])
    return admit_in_order(fill, candidates, order, paths, one_phase)


def admit_with_margin(fill: Fill, candidates: np.ndarray, order: np.ndarray,
                      paths: list[np.ndarray], one_phase: Fill | None,
                      served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``admit``, where an EVSE not ``served`` now joins the served ones only with
    ``ENTRY_MARGIN_A`` to spare on every node of its path (hysteresis); the served keep their
    place down to their minimum. Where admission drops a served EVSE (the rotation's turn, or
    a budget that shrank) nobody is merely joining, and no margin applies. Returns who is
    admitted, and who waits for the margin."""
    held = np.zeros_like(candidates)
    while True:
        admitted = admit(fill, candidates & ~held, order, paths, one_phase)
        if np.any(served & candidates & ~admitted):
            return admitted, held
        short = [e for e in order.tolist() if admitted[e] and not served[e]
                 and not _room_to_spare(fill, admitted, paths[e], e)]
        if not short:
            return admitted, held
        held[short[-1]] = True  # the last in the rotation waits first


def _room_to_spare(fill: Fill, admitted: np.ndarray, path: np.ndarray, e: int) -> bool:
    """Do the admitted minimums leave ``ENTRY_MARGIN_A`` more of ``e`` room on its path?"""
    lower = np.where(admitted, fill.lower, 0.0)
    lo, hi = fill.lo[path], fill.hi[path]
    load_a = subtree_sums(lower[:, None] * fill.usage, lo, hi) + ENTRY_MARGIN_A * fill.usage[e]
    load_w = subtree_sums(lower * fill.watts_per_amp, lo, hi) + (
        ENTRY_MARGIN_A * fill.watts_per_amp[e])
    return bool(np.all(load_a <= fill.cap_a[path] + EPS)
                and np.all(load_w <= fill.cap_w[path] + EPS))


def admit_in_order(fill: Fill, candidates: np.ndarray, order: np.ndarray,
                    paths: list[np.ndarray], one_phase: Fill | None) -> np.ndarray:
    """``admit``'s greedy pass. Each EVSE touches a few nodes, so the sums are kept in
    Python floats (the same arithmetic as numpy's, without a numpy call per EVSE and node)."""
    admitted = np.zeros_like(candidates)
    load_a = [[0.0] * PHASES for _ in range(len(fill.cap_a))]
    load_w = [0.0] * len(fill.cap_w)
    cap_a, cap_w = fill.cap_a.tolist(), fill.cap_w.tolist()
    variants = [(v, v.lower.tolist(), v.upper.tolist(), v.watts_per_amp.tolist(),
                 v.usage.tolist()) for v in (fill, one_phase) if v is not None]
    # first look for real room (MIN_ROOM_A) on all or one phase, then for the minimum only
    tries = [(*v, MIN_ROOM_A) for v in variants] + [(*v, 0.0) for v in variants]
    wanted = candidates.tolist()
    for e in order.tolist():
        if not wanted[e]:
            continue
        path = paths[e].tolist()
        for variant, lower, upper, watts_per_amp, usage, need in tries:
            need_a = max(lower[e], need)
            use, wpa = usage[e], watts_per_amp[e]
            if upper[e] + EPS >= need_a and all(
                load_a[k][p] + need_a * use[p] <= cap_a[k][p] + EPS
                for k in path for p in range(PHASES)
            ) and all(load_w[k] + need_a * wpa <= cap_w[k] + EPS for k in path):
                for k in path:
                    row = load_a[k]
                    for p in range(PHASES):
                        row[p] += lower[e] * use[p]
                    load_w[k] += lower[e] * wpa
                admitted[e] = True
                if variant is one_phase:
                    for name in ("lower", "upper", "watts_per_amp"):
                        getattr(fill, name)[e] = getattr(one_phase, name)[e]
                    fill.usage[e] = one_phase.usage[e]
                break
    return admitted


def misfits(fill: Fill, one_phase: Fill | None, evses: list[int],
             paths: list[np.ndarray]) -> dict[int, tuple[int, int] | None]:
    """Per EVSE, the node (and phase, or PHASES for power) where its minimum would not fit
    even alone; None when it would fit on some variant: then it waits for others, not for a
    node. The caps are read once as Python floats (the same comparisons as on arrays)."""
    if not evses:
        return {}
    cap_a, cap_w = fill.cap_a.tolist(), fill.cap_w.tolist()
    variants = [(v.lower.tolist(), v.upper.tolist(), v.usage.tolist(), v.watts_per_amp.tolist())
                for v in (fill, one_phase) if v is not None]
    found: dict[int, tuple[int, int] | None] = {}
    for e in evses:
        misfit = None
        for lower, upper, usage, watts_per_amp in variants:
            if upper[e] + EPS < lower[e]:
                continue
            amps, use, watts = lower[e], usage[e], lower[e] * watts_per_amp[e]
            over = next(((k, p) for k in paths[e].tolist() for p in (*range(PHASES), PHASES)
                         if (amps * use[p] > cap_a[k][p] + EPS if p < PHASES
                             else watts > cap_w[k] + EPS)), None)
            if over is None:
                misfit = None
                break
            misfit = misfit or over
        found[e] = misfit
    return found
