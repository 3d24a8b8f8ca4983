"""Cars that need more than the EVSE's minimum: learned when they refuse, served in turn."""

from __future__ import annotations

from energytree.carminimum import MinimumLearner
from energytree.types import EvseState
from tests.unit.test_ramps import behind_a_fuse, grants, step


def test_a_refusal_teaches_the_next_known_minimum_for_the_session() -> None:
    learner = MinimumLearner()
    assert learner.refused("a", 6.0, evse_min_a=6.0, evse_max_a=32.0)
    assert learner.minimum_a == {"a": 8.0}
    assert learner.refused("a", 8.0, evse_min_a=6.0, evse_max_a=32.0)
    assert learner.minimum_a == {"a": 10.0}
    assert not learner.refused("a", 5.0, evse_min_a=6.0, evse_max_a=32.0)  # below the EVSE's
    assert not learner.refused("a", 32.0, evse_min_a=6.0, evse_max_a=32.0)  # a full car
    assert not learner.refused("a", 6.0, evse_min_a=6.0, evse_max_a=32.0)  # nothing new
    assert learner.refused("a", 17.0, evse_min_a=6.0, evse_max_a=32.0)  # beyond them: +1 A
    assert learner.minimum_a == {"a": 18.0}
    assert learner.refused("b", 9.5, evse_min_a=6.0, evse_max_a=10.0)  # never above the EVSE
    assert learner.minimum_a["b"] == 10.0
    assert learner.forget("a") and learner.minimum_a == {"b": 10.0}


async def test_two_cars_that_need_8_a_on_a_12_a_fuse_are_served_one_at_a_time() -> None:
    """Shared equally, both get 6 A and both cars refuse it: nothing flows. Once each car has
    refused, the manager offers at least 8 A, so the fuse serves one car with 12 A."""
    manager = behind_a_fuse(12.0, response_s=1.0)
    await step(manager, 0, a=EvseState.Charging, b=EvseState.Charging)
    assert (grants(manager)["a"], grants(manager)["b"]) == (6.0, 6.0)
    for uuid in ("a", "b"):
        manager.set_evse_state(uuid, EvseState.PausedEV)  # their cars need 8 A
    await manager.replan()
    for _ in range(3):  # the served car's offer rises as the other's 6 A is known to be gone
        manager.clock.advance(1)  # type: ignore[attr-defined]
        manager.tick()
    served = sorted([grants(manager)["a"], grants(manager)["b"]])
    assert served == [0.0, 12.0]


async def test_a_pause_that_answers_an_older_offer_teaches_from_that_offer() -> None:
    """The car at ``a`` needs 8 A. It was offered 6 A, then all of its 12 A fuse as ``b``
    left; it reports its pause a second later, answering the 6 A offer. Learning from the
    12 A it was offered last (it needs 13 A, more than the fuse) would keep it from charging
    for its whole session; the least offer of the response time counts."""
    manager = behind_a_fuse(12.0, response_s=5.0)
    await step(manager, 0, a=EvseState.Charging, b=EvseState.Charging)
    assert grants(manager)["a"] == 6.0
    await step(manager, b=EvseState.Unplugged)
    assert grants(manager)["a"] == 12.0
    await step(manager, a=EvseState.PausedEV)
    assert grants(manager)["a"] == 12.0
