"""The cFos-compatible HTTP API for grid operators and energy suppliers (``/cnf?cmd=…``)."""

from __future__ import annotations

from adapters.http.cnf import HttpApi, HttpApiConfig, SmgwListenerConfig, build_app

__all__ = ["HttpApi", "HttpApiConfig", "SmgwListenerConfig", "build_app"]
