"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for the page tests.

No browser is ever downloaded: a missing ``/usr/bin/chromium`` fails the test with a message
saying how to install it (``make test`` installs it on a fresh machine).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1"}


@dataclass
class Watch:
    """What the page did that it should not: console errors and requests to other hosts."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def page_error(self, error: Exception) -> None:
        self.errors.append(str(error))

    def request(self, request: Request) -> None:
        if _outside(request.url):
            self.outside.append(request.url)


def _outside(address: str) -> bool:
    url = urlsplit(address)
    return url.scheme not in ("data", "about", "blob") and url.hostname not in LOCAL_HOSTS


def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium package "
                    "(apt-get install -y chromium; `make test` does this when it is missing)")
    return str(CHROMIUM)


@asynccontextmanager
async def browser(profile: Path, credentials: tuple[str, str] | None,
                  width: int = 1100, height: int = 900) -> AsyncIterator[tuple[Page, Watch]]:
    """A fresh Chromium profile and one page, watched; requests off the host are refused."""
    executable = chromium_path()
    shutil.rmtree(profile, ignore_errors=True)
    watch = Watch()
    auth = None if credentials is None else {"username": credentials[0],
                                             "password": credentials[1]}
    async with async_playwright() as playwright:
        context: BrowserContext = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS,
            http_credentials=auth, viewport={"width": width, "height": height},
            service_workers="block")
        try:
            context.on("request", watch.request)
            await context.route(_outside, lambda route: route.abort())
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("console", watch.console)
            page.on("pageerror", watch.page_error)
            yield page, watch
        finally:
            await context.close()
