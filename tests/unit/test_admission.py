"""Admission: the greedy pass on Python floats admits exactly whom the pass on arrays did."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from energytree import admission
from energytree.admission import EPS, MIN_ROOM_A
from tests.builders import alloc, evse, node


def _admit_on_arrays(fill, candidates, order, paths, one_phase):
    """The greedy admission pass written on numpy arrays, one call per EVSE and node: the
    reference for the pass on Python floats."""
    admitted = np.zeros_like(candidates)
    load_a, load_w = np.zeros_like(fill.cap_a), np.zeros_like(fill.cap_w)
    variants = [v for v in (fill, one_phase) if v is not None]
    for e in order:
        if not candidates[e]:
            continue
        for variant, need in [(v, MIN_ROOM_A) for v in variants] + [(v, 0.0) for v in variants]:
            need_a, path = max(variant.lower[e], need), paths[e]
            if variant.upper[e] + EPS >= need_a and np.all(
                load_a[path] + need_a * variant.usage[e] <= fill.cap_a[path] + EPS
            ) and np.all(load_w[path] + need_a * variant.watts_per_amp[e]
                         <= fill.cap_w[path] + EPS):
                load_a[path] += variant.lower[e] * variant.usage[e]
                load_w[path] += variant.lower[e] * variant.watts_per_amp[e]
                admitted[e] = True
                if variant is one_phase:
                    for name in ("lower", "upper", "watts_per_amp", "usage"):
                        getattr(fill, name)[e] = getattr(one_phase, name)[e]
                break
    return admitted


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([6.0, 8.0, 16.0, 32.0]), st.sampled_from([0.0, 6.0]),
                          st.sampled_from([1, 3]), st.booleans(),
                          st.sampled_from(["L1L2L3", "L2L3L1", "L3L1L2"])),
                min_size=2, max_size=9),
       st.sampled_from([10.0, 20.0, 45.0]), st.sampled_from([12.0, 40.0]),
       st.integers(0, 20))
def test_admission_on_python_floats_is_the_pass_on_arrays(cars, fuse_a, group_a,
                                                          rotation) -> None:
    evses = [evse(f"e{i}", max_a, min_a, phases, switchable=switchable, rotation=turn)
             for i, (max_a, min_a, phases, switchable, turn) in enumerate(cars)]
    request = node("grid", node("left", *evses[::2], max_a=group_a), *evses[1::2],
                   max_a=fuse_a)
    fast = alloc(request, rotation=rotation)
    with patch.object(admission, "admit_in_order", _admit_on_arrays):
        reference = alloc(request, rotation=rotation)
    assert fast.current_a.tolist() == reference.current_a.tolist()
    assert fast.phases.tolist() == reference.phases.tolist()
    assert fast.reasons == reference.reasons
