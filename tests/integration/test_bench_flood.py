"""The flood benchmark's load on a small scale: every request it sends is counted once, as an
HTTP answer or as refused at the door, never lost from the tally. No timings are checked."""

from __future__ import annotations

from pathlib import Path

from adapters.http import HttpApi, HttpApiConfig
from bench.floodload import load
from energytree.formula import MappingEnvironment
from energytree.variables import VariableStore


async def test_every_request_is_answered_or_counted_as_refused(tmp_path: Path) -> None:
    store = VariableStore(tmp_path / "variables.json")
    store.load()
    config = HttpApiConfig(port=0, password="flood-test")
    async with HttpApi(config, store, lambda: MappingEnvironment({})) as api:
        assert api.port is not None
        report = await load(api.port, rate=200, connect_rate=100, seconds=1.0, connections=4)
    kept, new = report["keep_alive"], report["new_connections"]
    assert kept["sent"] == 200 and new["sent"] == 100
    assert kept["answers"] == {"401": 200}  # wrong or no credentials, connections kept open
    assert kept["connections"] == 4
    assert sum(new["answers"].values()) == 100
    assert set(new["answers"]) <= {"400", "413", "431", "refused"}
    assert new["answers"].get("413", 0) + new["answers"].get("431", 0) > 0
