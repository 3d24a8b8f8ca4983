"""The dashboard's HTTP side through ``Service`` on 127.0.0.1: auth, forms, logs, /metrics.

The metrics are read back with prometheus-client's own text parser (what a scraper does).
"""

from __future__ import annotations

import asyncio
import csv
import io
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from energytree.app.plugs.sunspec import SUNSPEC
from energytree.app.runtime import Service
from tests.dashboard_site import OPERATOR, VIEWER, http_api_url, running_demo

ROUTES = ["/", "/static/app.js", "/api/live", "/api/plan", "/api/events", "/api/audit",
          "/api/audit.csv", "/api/sessions", "/api/sessions.csv", "/metrics"]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[Service, str]]:
    async with running_demo(tmp_path) as running:
        yield running


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_every_route_asks_for_credentials(demo: tuple[Service, str]) -> None:
    _, base = demo
    async with httpx.AsyncClient(base_url=base) as client:
        for path in ROUTES:
            answer = await client.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"].startswith('Basic realm="energytree"')
        wrong = await client.get("/", auth=(VIEWER[0], "wrong"))
        assert wrong.status_code == 401
        assert (await client.post("/api/target", json={})).status_code == 401


async def test_metrics_in_prometheus_format(demo: tuple[Service, str]) -> None:
    service, base = demo
    async with httpx.AsyncClient(base_url=base, auth=VIEWER) as client:
        await until(lambda: service.metrics.plan_seconds._sum.get() > 0)
        await until(lambda: all(e.current_a > 0 for e in service.manager.status().evses))
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)
    assert found["energytree_tick_duration_seconds_count"][0][1] > 0
    assert found["energytree_plan_solve_duration_seconds_count"][0][1] >= 1
    granted = {(s["uuid"], s["phase"]): v
               for s, v in found["energytree_evse_granted_current_amperes"]}
    assert {uuid for uuid, _ in granted} == {"garage", "carport"}
    assert all(0 <= v <= 16 for v in granted.values())
    measured = {s["uuid"] for s, _ in found["energytree_evse_measured_current_amperes"]}
    assert measured == {"garage", "carport"}
    headroom = {(s["node"], s["phase"]): v for s, v in found["energytree_node_headroom_amperes"]}
    assert set(headroom) >= {("house", "L1"), ("house", "L2"), ("house", "L3")}
    assert all(v >= -0.01 for v in headroom.values())  # safety: no node over its cap
    states = {s["state"]: v for s, v in found["energytree_grid_meter_state"]}
    assert sum(states.values()) == 1
    assert found["energytree_connection_up"][0][0] == {"protocol": "grid_meter"}
    assert "energytree_plan_gap_ratio" in found


async def test_external_limits_show_in_metrics_and_live(demo: tuple[Service, str]) -> None:
    """An operator's limit and the site's formulas appear with value, unit and channel."""
    service, base = demo
    service.operator_limit(SUNSPEC, 9000.0, "test")
    async with httpx.AsyncClient(base_url=base, auth=VIEWER) as client:
        live = (await client.get("/api/live")).json()
        found = samples((await client.get("/metrics")).text)
    source = next(s for s in live["sources"] if s["name"] == "sunspec")
    assert (source["value"], source["unit"], source["node"]) == (9000.0, "W", "house")
    formula = {(s["node"], s["channel"], s["value"], s["unit"])
               for s in live["sources"] if s["name"] == "formula"}
    assert formula == {("house", "site formula", 22000.0, "W"),  # 22000 × AVAIL (unset) %
                       ("carport", "site formula", 10.0, "A")}  # the charging rule, 10000 mA
    assert sorted(found["energytree_external_limit"], key=lambda s: s[1]) == [
        ({"source": "formula", "node": "carport", "unit": "A"}, 10.0),
        ({"source": "sunspec", "node": "house", "unit": "W"}, 9000.0),
        ({"source": "formula", "node": "house", "unit": "W"}, 22000.0)]


async def test_target_form_sets_clears_and_rejects(demo: tuple[Service, str]) -> None:
    service, base = demo
    leave = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    async with httpx.AsyncClient(base_url=base, auth=VIEWER) as client:
        bad = await client.post("/api/target", json={
            "uuid": "garage", "energy_kwh": "NaN", "leave_time": "2020-01-01T08:00"})
        assert bad.status_code == 400
        assert set(bad.json()["fields"]) == {"energy_kwh", "leave_time"}
        both = await client.post("/api/target", json={
            "uuid": "garage", "energy_kwh": "5", "soc_percent": "80"})
        assert both.json()["fields"] == {"energy_kwh": "give an energy or a state of charge, "
                                                       "not both"}
        unknown = await client.post("/api/target", json={"uuid": "shed", "energy_kwh": 5})
        assert "uuid" in unknown.json()["fields"]
        form = await client.post("/api/target", content=b"uuid=garage",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        big = await client.post("/api/target", content=b"{" + b" " * 40_000 + b"}",
                                headers={"Content-Type": "application/json"})
        assert big.status_code == 413
        assert service.manager.status().evses[0].target is None  # nothing changed
        ok = await client.post("/api/target", json={
            "uuid": "garage", "energy_kwh": "12.5", "leave_time": leave})
        assert ok.status_code == 200, ok.text
        await until(lambda: service.manager.status().evses[0].target is not None)
        target = service.manager.status().evses[0].target
        assert target is not None and target.energy_amount_needed == 12.5
        cleared = await client.post("/api/target", json={"uuid": "garage", "clear": True})
        assert cleared.json() == {"uuid": "garage", "target": None}
        await until(lambda: service.manager.status().evses[0].target is None)


async def test_only_the_operator_changes_variables(demo: tuple[Service, str]) -> None:
    service, base = demo
    async with httpx.AsyncClient(base_url=base) as client:
        denied = await client.post("/api/variables", auth=VIEWER,
                                   json={"name": "AVAIL", "expr": "50"})
        assert denied.status_code == 403
        bad = await client.post("/api/variables", auth=OPERATOR,
                                json={"name": "AVAIL", "expr": "50 +"})
        assert bad.status_code == 400 and "error" in bad.json()
        assert service.variables.get_all(service.environment()) == []
        ok = await client.post("/api/variables", auth=OPERATOR,
                               json={"name": "AVAIL", "expr": "50"})
        assert ok.json() == {"changed": ["AVAIL"]}
        live = (await client.get("/api/live", auth=OPERATOR)).json()
        assert live["role"] == "operator"
        assert [v["name"] for v in live["variables"]] == ["AVAIL"]
        audit = await client.get("/api/audit.csv", auth=VIEWER)
    rows = list(csv.DictReader(io.StringIO(audit.text)))
    assert audit.headers["Content-Disposition"] == 'attachment; filename="audit.csv"'
    assert [(r["source"], r["value"]) for r in rows] == [("CM.AVAIL", "50.0")]


async def test_live_feed_follows_an_avail_write(demo: tuple[Service, str]) -> None:
    """SSE: after a write over the variables API the next frames carry the new value."""
    service, base = demo
    async with (httpx.AsyncClient(base_url=base, auth=VIEWER, timeout=30) as client,
                client.stream("GET", "/api/events") as stream):
        assert stream.headers["Content-Type"] == "text/event-stream"
        lines = stream.aiter_lines()
        events = []
        while len(events) < 3:
            line = await anext(lines)
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
        assert events == ["hello", "plan", "live"]
        async with httpx.AsyncClient(auth=OPERATOR) as api:
            answer = await api.get(f"{http_api_url(service)}/cnf",
                                   params={"cmd": "set_cm_vars", "name": "AVAIL",
                                           "val": "40"})
            assert answer.status_code == 200
        async with asyncio.timeout(20):
            async for line in lines:
                if line.startswith("data: ") and '"name": "AVAIL"' in line:
                    assert '"value": 40.0' in line
                    break


async def test_dashboard_over_tls(tmp_path: Path) -> None:
    """The same TLS options as the variables API; a plain-HTTP client gets nowhere."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    for blob in server.cert_chain_pems:
        blob.write_to_path(tmp_path / "server.pem", append=True)
    section = {"port": 0, "username": VIEWER[0], "password": VIEWER[1],
               "tls_cert": str(tmp_path / "server.pem"), "tls_key": str(tmp_path / "server.key")}
    async with running_demo(tmp_path / "state", dashboard=section) as (_service, base):
        secure = base.replace("http://", "https://")
        with ca.cert_pem.tempfile() as ca_file:
            context = ssl.create_default_context(cafile=ca_file)
            async with httpx.AsyncClient(verify=context, auth=VIEWER) as client:
                answer = await client.get(f"{secure}/api/live")
        assert answer.status_code == 200 and answer.json()["evses"]
        async with httpx.AsyncClient(auth=VIEWER) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"{base}/api/live")
