"""The live feed's fan-out: every page gets the latest frame of each kind, none piles up."""

from __future__ import annotations

import asyncio
import contextlib
import json

from adapters.web.live import LiveHub, Mailbox, sse_frame


def event_of(frame: bytes) -> tuple[str, object]:
    head, data = frame.decode().strip().split("\n")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))


async def test_a_slow_page_gets_the_latest_of_each_kind() -> None:
    box = Mailbox()
    for k in range(5):
        box.put("live", sse_frame("live", {"k": k}))
    box.put("plan", sse_frame("plan", {"p": 1}))
    box.put("live", sse_frame("live", {"k": 9}))
    frames = await box.take()
    assert frames is not None
    assert [event_of(f) for f in frames] == [("live", {"k": 9}), ("plan", {"p": 1})]
    box.close()
    assert await box.take() is None


async def test_hub_sends_changes_and_new_plans_only() -> None:
    state = {"n": 0}
    plans = [object()]
    built: list[object] = []

    def build_plan() -> dict[str, object]:
        built.append(plans[-1])
        return {"plan": len(plans)}

    hub = LiveHub(lambda: dict(state), lambda: plans[-1], build_plan, refresh_s=0.01)
    box = hub.join()
    first = await box.take()
    assert first is not None and [event_of(f)[0] for f in first] == ["plan", "live"]
    task = asyncio.create_task(hub.run())
    try:
        state["n"] = 1
        plans.append(object())
        seen: dict[str, object] = {}
        async with asyncio.timeout(10):
            while seen.get("live") != {"n": 1} or seen.get("plan") != {"plan": 2}:
                frames = await box.take()
                assert frames is not None
                seen.update(event_of(f) for f in frames)
        assert len(built) == 2  # chart data built once per plan, not per refresh
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        hub.close()
    assert hub.pages == 0
