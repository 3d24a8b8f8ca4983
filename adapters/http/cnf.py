"""The cFos-compatible HTTP API for grid operators and energy suppliers (see docs/semantics.md).

The ``cmd=`` grammar, as in cFos's "HTTP API for energy suppliers":

    GET  /cnf?cmd=set_cm_vars&name=n&val=v[&clear=1][&tmp=1]
    POST /cnf?cmd=set_cm_vars[&clear=1][&tmp=1]   body {"vars": [{"name": n, "expr": v}, …]}
    GET  /cnf?cmd=get_cm_vars   →   {"vars": [{"name": n, "expr": v, "value": x}, …]}

The POST body is JSON whatever its Content-Type says (cFos's own ``curl -d`` example sends
form encoding); a POST without a body may carry ``name`` and ``val`` in the query, as a GET
does. ``clear=1`` deletes all variables first; ``tmp=1`` keeps the change in memory only.
Variable names compare case-insensitively; the spelling last written is shown.
Every error is ``{"error": "…"}`` and changes nothing. In a GET query ``+`` means a
space (URL form encoding), so a formula's plus sign is sent as ``%2B``.

The main listener asks for HTTP basic auth (TLS optional); the Smart Meter Gateway listener
authenticates the gateway by its TLS client certificate instead.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters.http.door import Listener, door_middleware, serve_app
from adapters.http.incoming import credentials_match, json_body
from energytree.errors import ConfigError, FormulaError, RequestError
from energytree.formula import FormulaEnvironment
from energytree.variables import Origin, VariableStore, VariableView, items_from_json

__all__ = [
    "COMMANDS",
    "MAX_BODY_BYTES",
    "HttpApi",
    "HttpApiConfig",
    "SmgwListenerConfig",
    "build_app",
    "server_ssl_context",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
REALM = "energytree"
UNAUTHORIZED = json.dumps({"error": "authentication required"})
VARS_SHAPE = '{"vars": [{"name": …, "expr": …}, …]}'

EnvironmentProvider = Callable[[], FormulaEnvironment]


class SmgwListenerConfig(BaseModel):
    """A second listener for the Smart Meter Gateway: TLS client certificates, no password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8443, ge=0, le=65535, description="TCP port; 0 picks a free one")
    tls_cert: Path = Field(description="This server's certificate chain (PEM)")
    tls_key: Path = Field(description="This server's private key (PEM)")
    client_ca: Path = Field(description="CA certificates (PEM) that issue the gateway's cert")


class HttpApiConfig(BaseModel):
    """The HTTP API: one password-protected listener (TLS optional) plus an optional SMGW one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one")
    username: str = Field("admin", min_length=1, pattern=r"^[^:]+$", description="Basic auth")
    password: SecretStr = Field(min_length=1, description="Basic auth password")
    tls_cert: Path | None = Field(None, description="Certificate chain (PEM); None: plain HTTP")
    tls_key: Path | None = Field(None, description="Private key (PEM) for tls_cert")
    smgw: SmgwListenerConfig | None = Field(None, description="Smart Meter Gateway listener")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


@dataclass(frozen=True)
class _Api:
    store: VariableStore
    environment: EnvironmentProvider
    username: str | None  # None: the gateway's TLS client certificate authenticates

    def origin(self, request: web.Request) -> Origin:
        """The channel and identity the audit log records for this request."""
        if self.username is not None:
            return Origin("http", self.username)
        return Origin("smgw", _certificate_subject(request))


_API = web.AppKey("cnf_api", _Api)
Handler = Callable[[web.Request, _Api], Awaitable[dict[str, object]]]


async def set_cm_vars(request: web.Request, api: _Api) -> dict[str, object]:
    """Set one variable (GET name/val) or several (POST body); answers the changed names."""
    clear, tmp = _flag(request, "clear"), _flag(request, "tmp")
    if request.method == "POST" and not (request.can_read_body or "name" in request.query):
        raise RequestError(
            'POST set_cm_vars needs a JSON body {"vars": [{"name": …, "expr": …}]} '
            "or name=…&val=… in the query")
    if request.method == "POST" and request.can_read_body:
        items = items_from_json(await json_body(request, VARS_SHAPE))
    else:
        items = [_query_item(request)]
    try:
        changed = api.store.set_many(items, clear=clear, persist=not tmp,  # type: ignore[arg-type]
                                     origin=api.origin(request))
    except FormulaError as exc:
        if request.method == "GET" and "+" in request.rel_url.raw_query_string:
            hint = "note: in a URL '+' stands for a space; write %2B for a plus sign."
            raise FormulaError(f"{hint} {exc}", exc.position) from None
        raise
    return {"changed": sorted(changed)}


async def get_cm_vars(request: web.Request, api: _Api) -> dict[str, object]:
    """Every variable with its formula (or constant) and its value now."""
    return {"vars": [_view_json(view) for view in api.store.get_all(api.environment())]}


COMMANDS: Mapping[str, tuple[Handler, frozenset[str]]] = {
    "set_cm_vars": (set_cm_vars, frozenset({"GET", "POST"})),
    "get_cm_vars": (get_cm_vars, frozenset({"GET"})),
}


async def cnf(request: web.Request) -> web.Response:
    """Dispatch ``/cnf?cmd=…`` to its handler."""
    cmd = request.query.get("cmd")
    if cmd not in COMMANDS:
        raise RequestError(f"unknown cmd {cmd!r}; known commands: {', '.join(COMMANDS)}")
    handler, methods = COMMANDS[cmd]
    if request.method not in methods:
        raise web.HTTPMethodNotAllowed(request.method, methods)
    return web.json_response(await handler(request, request.app[_API]))


def _view_json(view: VariableView) -> dict[str, object]:
    shown: dict[str, object] = {"name": view.name, "expr": view.expr, "value": view.value}
    if view.error is not None:
        shown["error"] = view.error
    return shown


def _query_item(request: web.Request) -> tuple[str, str]:
    name, value = request.query.get("name"), request.query.get("val")
    if name is None or value is None:
        raise RequestError("set_cm_vars needs name=… and val=… (or a POST body)")
    if not value.strip():
        raise RequestError(f"val for {name!r} is empty: send a number or a formula, e.g. val=60")
    return name, value


def _certificate_subject(request: web.Request) -> str:
    """The common name in the client certificate (the SMGW listener requires one)."""
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "client certificate"


def _flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "0").strip().lower()
    if text not in ("", "0", "1", "false", "true"):
        raise RequestError(f"{name} must be 0 or 1, not {text!r}")
    return text in ("1", "true")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """The one place where errors become HTTP: ours → 400, HTTP errors keep their status."""
    try:
        return await handler(request)
    except (RequestError, FormulaError) as exc:
        return _error(400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return _error(exc.status, exc.text or exc.reason, kept)
    except Exception:
        logger.exception("internal error in %s %s", request.method, request.path)
        return _error(500, "internal server error")


def basic_auth_middleware(username: str, password: str) -> Callable:
    """Require HTTP basic auth with these credentials, compared in constant time."""
    expected = (username.encode("utf-8"), password.encode("utf-8"))
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}

    @web.middleware
    async def basic_auth(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if not credentials_match(request.headers.get("Authorization", ""), *expected):
            # returned, not raised: a flood of wrong passwords costs one small answer each
            return web.Response(text=UNAUTHORIZED, status=401, headers=challenge,
                                content_type="application/json")
        return await handler(request)

    return basic_auth


def build_app(
    store: VariableStore,
    environment: EnvironmentProvider,
    *,
    credentials: tuple[str, str] | None,
) -> web.Application:
    """The ``/cnf`` application; `credentials` None means the TLS layer authenticates."""
    middlewares = [door_middleware(MAX_BODY_BYTES), error_middleware]
    if credentials is not None:
        middlewares.append(basic_auth_middleware(*credentials))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[_API] = _Api(store, environment, credentials[0] if credentials else None)
    app.router.add_get("/cnf", cnf, allow_head=False)
    app.router.add_post("/cnf", cnf)
    return app


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS server context; with `client_ca`, clients must show a certificate it issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load client CA file {client_ca}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class HttpApi:
    """Runs the listeners of an `HttpApiConfig`.

    Usage::

        api = HttpApi(config, store, lambda: manager.formula_environment())
        port = await api.start()   # the bound port (useful with port=0)
        ...
        await api.stop()
    """

    def __init__(
        self, config: HttpApiConfig, store: VariableStore, environment: EnvironmentProvider
    ) -> None:
        self.config = config
        self.store = store
        self.environment = environment
        self.port: int | None = None
        self.smgw_port: int | None = None
        self._listeners: list[Listener] = []

    async def start(self) -> int:
        """Start listening; returns the main listener's port."""
        config = self.config
        main_tls = None
        if config.tls_cert is not None and config.tls_key is not None:
            main_tls = server_ssl_context(config.tls_cert, config.tls_key)
        smgw = config.smgw
        smgw_tls = None
        if smgw is not None:
            smgw_tls = server_ssl_context(smgw.tls_cert, smgw.tls_key, smgw.client_ca)
        credentials = (config.username, config.password.get_secret_value())
        try:
            app = build_app(self.store, self.environment, credentials=credentials)
            self.port = await self._serve(app, config.host, config.port, main_tls)
            if smgw is not None:
                app = build_app(self.store, self.environment, credentials=None)
                self.smgw_port = await self._serve(app, smgw.host, smgw.port, smgw_tls)
        except BaseException:
            await self.stop()
            raise
        return self.port

    async def stop(self) -> None:
        """Close the listeners and their connections."""
        while self._listeners:
            await self._listeners.pop().stop()

    async def _serve(
        self, app: web.Application, host: str, port: int, tls: ssl.SSLContext | None
    ) -> int:
        listener = await serve_app(app, host, port, tls)
        self._listeners.append(listener)
        return listener.port

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
