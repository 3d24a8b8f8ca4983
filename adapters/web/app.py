"""The dashboard's HTTP listener: the page, its live feed, forms, log downloads, ``/metrics``.

Routes (all behind HTTP basic auth, as the variables API)::

    GET  /                   the page (static files from this package, nothing external)
    GET  /static/{file}      its script and style sheet
    GET  /api/events         server-sent events: ``hello`` (role), ``plan``, ``live``
    GET  /api/live, /api/plan            the same data once, as JSON
    POST /api/target         {"uuid", "energy_kwh" | "soc_percent", "leave_time", "clear"}
    POST /api/variables      {"name", "expr"} (the operator only)
    GET  /api/audit[.csv], /api/sessions[.csv]
    GET  /metrics            Prometheus text format

A POST must say ``Content-Type: application/json``: a browser cannot send that across sites
without asking first, so another page cannot use a logged-in browser to set targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Self

from aiohttp import web

from adapters.http.cnf import (
    REALM,
    error_middleware,
    server_ssl_context,
)
from adapters.http.incoming import credentials_match, json_body
from adapters.web.config import DashboardConfig
from adapters.web.forms import CarFacts, FormError, parse_target_form, parse_variable_form
from adapters.web.live import LiveHub, sse_frame
from adapters.web.metrics import CONTENT_TYPE, SiteMetrics
from adapters.web.plandata import plan_chart
from adapters.web.snapshot import SiteFeed, live_snapshot
from energytree.audit import AuditLog
from energytree.errors import ConfigError, FormulaError, NotFoundError, RequestError
from energytree.sessions import SessionLog
from energytree.variables import VariableStore

__all__ = ["Dashboard", "DashboardSite", "build_app"]

STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
OPERATOR, VIEWER = "operator", "viewer"


@dataclass(frozen=True)
class DashboardSite:
    """What the dashboard reads and may change in the running service."""

    feed: SiteFeed
    metrics: SiteMetrics
    variables: VariableStore
    audit: AuditLog
    sessions: Callable[[], SessionLog | None]
    car: Callable[[str], CarFacts]
    operator: tuple[str, str] | None  # the variables API's credentials


SITE = web.AppKey("site", DashboardSite)
HUB = web.AppKey("hub", LiveHub)
ROLE = web.RequestKey("role", str)


def _static(name: str) -> bytes:
    return resources.files("adapters.web").joinpath("static", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text=f"no file {name!r}")
    return web.Response(body=_static(name), content_type=STATIC[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def events(request: web.Request) -> web.StreamResponse:
    """The live feed; ends when the page goes away or the server stops."""
    hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    mailbox = hub.join()
    try:
        await response.write(sse_frame("hello", {"role": request[ROLE]}))
        while (frames := await mailbox.take()) is not None:
            for frame in frames:
                await response.write(frame)
    except ConnectionResetError:  # the page went away
        pass
    finally:
        hub.leave(mailbox)
    return response


async def live(request: web.Request) -> web.Response:
    return web.json_response({**live_snapshot(request.app[SITE].feed), "role": request[ROLE]})


async def plan(request: web.Request) -> web.Response:
    chosen = request.app[SITE].feed.manager.plan
    return web.json_response(None if chosen is None else plan_chart(chosen))


async def _form(request: web.Request) -> dict[str, object]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the form as application/json")
    body = await json_body(request, "a JSON object of the form's fields")
    if not isinstance(body, dict):
        raise FormError({"form": "expected a JSON object"})
    return body


def _form_errors(exc: FormError) -> web.Response:
    return web.json_response({"error": str(exc), "fields": exc.fields}, status=400)


async def set_target(request: web.Request) -> web.Response:
    """Set or clear one EVSE's target; every bad field is named and nothing changes."""
    site = request.app[SITE]
    manager = site.feed.manager
    uuids = [e.uuid for e in manager.status().evses]
    try:
        form = parse_target_form(await _form(request), evses=uuids, zone=site.feed.zone,
                                 now=manager.clock.now(), car=site.car)
        manager.set_target(form.uuid, form.target)
    except FormError as exc:
        return _form_errors(exc)
    except NotFoundError as exc:
        return _form_errors(FormError({"uuid": str(exc)}))
    target = None if form.target is None else form.target.model_dump(mode="json",
                                                                      exclude_none=True)
    return web.json_response({"uuid": form.uuid, "target": target})


async def set_variable(request: web.Request) -> web.Response:
    """The operator sets a variable (as ``set_cm_vars`` would)."""
    if request[ROLE] != OPERATOR:
        raise web.HTTPForbidden(text="only the operator may change variables")
    try:
        name, expr = parse_variable_form(await _form(request))
        changed = request.app[SITE].variables.set_many([(name, expr)])
    except FormError as exc:
        return _form_errors(exc)
    except (RequestError, FormulaError) as exc:  # the store names what is wrong
        return _form_errors(FormError({"expr": str(exc)}))
    return web.json_response({"changed": sorted(changed)})


def _csv(text: str, name: str) -> web.Response:
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _sessions_csv(log: SessionLog | None) -> str:
    out = io.StringIO()
    if log is not None:
        log.write_csv(out)
    return out.getvalue()


async def audit(request: web.Request) -> web.Response:
    return web.json_response(request.app[SITE].audit.rows())


async def audit_csv(request: web.Request) -> web.Response:
    return _csv(request.app[SITE].audit.to_csv(), "audit.csv")


async def sessions(request: web.Request) -> web.Response:
    log = request.app[SITE].sessions()
    return web.json_response([] if log is None else [
        {"id": s.id, "evse": s.evse, "id_tag": s.id_tag, "start": s.start.isoformat(),
         "stop": None if s.stop is None else s.stop.isoformat(),
         "energy_wh": round(s.energy_wh, 1), "max_power_w": round(s.max_power_w, 1),
         "stop_reason": s.stop_reason} for s in log.sessions()])


async def sessions_csv(request: web.Request) -> web.Response:
    return _csv(_sessions_csv(request.app[SITE].sessions()), "sessions.csv")


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SITE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def auth_middleware(viewer: tuple[str, str] | None, operator: tuple[str, str] | None
                    ) -> Callable:
    """Basic auth: the operator's or the viewer's credentials; the role goes on the request."""
    accounts = [(role, user.encode(), password.encode())
                for role, pair in ((OPERATOR, operator), (VIEWER, viewer)) if pair is not None
                for user, password in [pair]]

    @web.middleware
    async def basic_auth(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        matches = [role for role, user, password in accounts
                   if credentials_match(header, user, password)]
        if not matches:
            challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
            raise web.HTTPUnauthorized(headers=challenge, text="authentication required")
        request[ROLE] = matches[0]
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return basic_auth


def build_app(config: DashboardConfig, site: DashboardSite) -> web.Application:
    """The dashboard application (the operator's credentials win where both would match)."""
    viewer = None if config.password is None else (config.username,
                                                    config.password.get_secret_value())
    app = web.Application(middlewares=[error_middleware, auth_middleware(viewer, site.operator)],
                          client_max_size=16 * 1024)
    app[SITE] = site
    feed = site.feed
    app[HUB] = LiveHub(lambda: live_snapshot(feed), lambda: feed.manager.plan,
                       lambda: None if feed.manager.plan is None else plan_chart(
                           feed.manager.plan), config.refresh_s)
    routes = [("/", page), ("/static/{name}", static_file), ("/api/events", events),
              ("/api/live", live), ("/api/plan", plan), ("/api/audit", audit),
              ("/api/audit.csv", audit_csv), ("/api/sessions", sessions),
              ("/api/sessions.csv", sessions_csv), ("/metrics", metrics)]
    for path, handler in routes:
        app.router.add_get(path, handler, allow_head=False)
    app.router.add_post("/api/target", set_target)
    app.router.add_post("/api/variables", set_variable)
    return app


class Dashboard:
    """Runs the dashboard listener.

    Usage::

        dashboard = Dashboard(config, site)
        port = await dashboard.start()   # the bound port (useful with port=0)
        await dashboard.stop()
    """

    def __init__(self, config: DashboardConfig, site: DashboardSite) -> None:
        if config.password is None and site.operator is None:
            raise ConfigError("dashboard: give it a password, or enable http_api "
                              "(whose credentials then log in as the operator)")
        self.config, self.site = config, site
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._hub_task: asyncio.Task[None] | None = None
        self._app: web.Application | None = None

    def snapshot(self) -> dict[str, object]:
        """The live site now (what ``/metrics`` exports)."""
        return live_snapshot(self.site.feed)

    async def start(self) -> int:
        config = self.config
        tls = None
        if config.tls_cert is not None and config.tls_key is not None:
            tls = server_ssl_context(config.tls_cert, config.tls_key)
        self._app = build_app(config, self.site)
        self._runner = web.AppRunner(self._app, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, config.host, config.port, ssl_context=tls).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self._hub_task = asyncio.create_task(self._app[HUB].run(), name="et-dashboard")
        self.port = int(self._runner.addresses[-1][1])
        return self.port

    async def stop(self) -> None:
        if self._hub_task is not None:
            self._hub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hub_task
        if self._app is not None:
            self._app[HUB].close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

