"""Headless Chromium for the web admin tests, and a live server to point it at.

Chromium and chromedriver come from the system (Debian: ``apt-get install chromium
chromium-driver``), selenium from the ``test`` extra. When one is missing the browser
tests skip, unless ``CANVASFLOW_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from tests.services import services_required

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WIDTH, HEIGHT = 1280, 800


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(name) for name in CHROMIUM_NAMES):
        return "no chromium binary on PATH (apt-get install chromium)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return None


def require_browser() -> None:
    """Skip (or, under CANVASFLOW_REQUIRE_SERVICES=1, fail) without Chromium and selenium."""
    reason = missing_browser()
    if reason is None:
        return
    if services_required():
        pytest.fail(f"{reason}; CANVASFLOW_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chrome() -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile and a 1280x800 viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="canvasflow-chrome-")
    options = webdriver.ChromeOptions()
    binary = next(shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n))
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class LiveServer:
    """A WSGI app served on a free local port from a daemon thread."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def serve(app: Any) -> LiveServer:
    """Serve ``app`` with werkzeug on 127.0.0.1 and a free port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-test-server", daemon=True)
    thread.start()
    return LiveServer(server, thread)


def sign_in(driver: Any, base_url: str, key: str) -> None:
    """Store the API key as the login page would, without typing it."""
    driver.get(f"{base_url}/login")
    driver.execute_script("sessionStorage.setItem('canvasflow.apiKey', arguments[0])", key)


def console_errors(driver: Any) -> list[str]:
    """Severe browser console messages, minus failed loads of optional API routes."""
    errors = []
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        if entry.get("level") != "SEVERE":
            continue
        if "Failed to load resource" in message and "/api/" in message:
            continue  # a 404 from a route that is not there yet, or a 422 the page shows
        errors.append(message)
    return errors
