"""The web admin in a real browser: log in, build a workflow in the editor, run it, watch it.

A werkzeug server in a thread serves ``create_app(settings)`` while an EmbeddedEngine
(worker threads, ticker, in-memory broker) runs the executions on a SQLite file of
its own. Headless Chromium drives the pages through selenium; see ``browser.py`` for
when these tests skip.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import migrations
import models
from app import create_app
from app.auth import create_user
from settings import Settings
from tests.web.browser import chrome, console_errors, require_browser, serve, sign_in

pytestmark = pytest.mark.slow
TIMEOUT = 30.0


@dataclass
class Live:
    url: str
    key: str

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app and an embedded engine on a fresh SQLite file, served on a free port."""
    require_browser()
    from tasks.embedded import EmbeddedEngine

    data_dir: Path = tmp_path_factory.mktemp("web-browser")
    settings = Settings(
        data_dir=data_dir,
        action_allow_private=True,
        tick_seconds=0.1,
        queue_name=f"cf_web_{secrets.token_hex(4)}",
    )
    migrations.upgrade(settings.effective_database_url)
    with models.session_scope(settings.effective_database_url) as session:
        _, key = create_user(session, "browser")
    engine = EmbeddedEngine(settings).start()
    server = serve(create_app(settings))
    try:
        yield Live(server.url, key)
    finally:
        server.stop()
        engine.stop()
        models.get_engine(settings.effective_database_url).dispose()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    with chrome() as driver:
        driver.implicitly_wait(0)
        yield driver


@pytest.fixture
def driver(browser: Any, live: Live) -> Iterator[Any]:
    sign_in(browser, live.url, live.key)
    browser.get_log("browser")  # start each test with an empty console
    yield browser
    assert console_errors(browser) == []


def wait_for(condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; its value."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the page is still rendering
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or condition}: {last_error}")


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def click(driver: Any, selector: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    element = wait_for(lambda: css(driver, selector), what=selector)
    # Real pointer events (the canvas listens for pointerdown), not element.click().
    ActionChains(driver).move_to_element(element).click().perform()


def node(driver: Any, node_id: str) -> str:
    return f'svg [data-node-id="{node_id}"]'


def type_into(driver: Any, selector: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = css(driver, selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def status_line(driver: Any) -> str:
    return css(driver, "[data-status-line]").text


def test_login_form_keeps_the_key_for_the_session(live: Live, browser: Any) -> None:
    browser.get(f"{live.url}/login")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{live.url}/workflows")
    wait_for(lambda: "/login?next=%2Fworkflows" in browser.current_url, what="redirect")
    css(browser, "#api-key").send_keys("cf_00000000_" + "x" * 40)
    click(browser, "[data-login-form] button")
    wait_for(lambda: css(browser, "[data-login-error]").is_displayed(), what="error")
    type_into(browser, "#api-key", live.key)
    click(browser, "[data-login-form] button")
    wait_for(lambda: browser.current_url == f"{live.url}/workflows", what="back to /workflows")
    assert browser.execute_script("return sessionStorage.getItem('canvasflow.apiKey')") == live.key
    click(browser, "[data-logout]")
    wait_for(lambda: browser.current_url.startswith(f"{live.url}/login"), what="logged out")
    assert browser.execute_script("return sessionStorage.getItem('canvasflow.apiKey')") is None


def test_validate_pins_each_problem_to_its_node(live: Live, driver: Any) -> None:
    driver.get(f"{live.url}/workflows/new")
    click(driver, "[data-add=start]")
    click(driver, "[data-add=action]")  # connected from start; its url is still empty
    click(driver, "[data-action=validate]")
    wait_for(lambda: css(driver, "[data-problems]").is_displayed(), what="problems")
    problems = css(driver, "[data-problem-list]").text
    assert "no end node" in problems
    assert "node action" in problems  # the url problem names the action node
    badge = css(driver, f"{node(driver, 'action')}.has-problem .node-problem-badge")
    assert badge.text == "1"
    assert "non-empty" in css(driver, "[data-callout=node]").text
    # Fix both, and the same button says so.
    click(driver, node(driver, "action"))
    type_into(driver, "[data-config=url]", f"{live.url}/api/health")
    click(driver, "[data-add=end]")
    click(driver, "[data-action=validate]")
    wait_for(lambda: "Valid" in status_line(driver), what="valid")
    assert not css(driver, "[data-problems]").is_displayed()
    assert all_css(driver, ".has-problem") == []


def test_build_save_run_and_watch_a_workflow(live: Live, driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.get(f"{live.url}/workflows/new")
    type_into(driver, "[data-field=name]", "built-in-the-browser")
    # Each new node hangs off the selected one: start -> greet -> split -> a.
    click(driver, "[data-add=start]")
    click(driver, "[data-add=transform]")
    type_into(driver, "[data-inspector] [data-field=id]", "greet")
    type_into(driver, "[data-config=expression]", '{greeting: ("Hello " + .input.name)}')
    click(driver, "[data-add=fork]")
    type_into(driver, "[data-inspector] [data-field=id]", "split")
    click(driver, "[data-add=transform]")
    type_into(driver, "[data-inspector] [data-field=id]", "a")
    type_into(driver, "[data-config=expression]", ".steps.greet.output.greeting")
    # split -> nap -> merge
    click(driver, node(driver, "split"))
    click(driver, "[data-add=delay]")
    type_into(driver, "[data-inspector] [data-field=id]", "nap")
    type_into(driver, "[data-config=seconds]", "1")
    click(driver, "[data-add=join]")
    type_into(driver, "[data-inspector] [data-field=id]", "merge")
    # a -> merge by dragging from a's output port onto merge.
    port = css(driver, f"{node(driver, 'a')} [data-port=out]")
    ActionChains(driver).drag_and_drop(port, css(driver, node(driver, "merge"))).perform()
    wait_for(lambda: css(driver, 'svg [data-source="a"][data-target="merge"]'), what="a->merge")
    # merge -> end through the inspector's Connect row.
    click(driver, node(driver, "merge"))
    click(driver, "[data-add=end]")
    click(driver, node(driver, "merge"))
    assert "end" in css(driver, "[data-inspector] .edge-list").text

    click(driver, "[data-action=save]")
    wait_for(lambda: css(driver, "[data-saved='1']"), what="saved as version 1")
    assert "/edit" in driver.current_url
    workflow_id = driver.current_url.rstrip("/").split("/")[-2]
    saved = live.api("GET", f"/api/workflows/{workflow_id}")
    assert saved["name"] == "built-in-the-browser"
    definition = saved["definition"]
    assert {n["id"] for n in definition["nodes"]} == {
        "start", "greet", "split", "a", "nap", "merge", "end"
    }  # fmt: skip
    assert {(e["source"], e["target"]) for e in definition["edges"]} == {
        ("start", "greet"), ("greet", "split"), ("split", "a"), ("split", "nap"),
        ("a", "merge"), ("nap", "merge"), ("merge", "end"),
    }  # fmt: skip
    assert all("position" in n for n in definition["nodes"])

    # Run it from the workflow page and watch the live timeline.
    click(driver, "[data-open-workflow]")
    wait_for(lambda: css(driver, "[data-run-form]"), what="workflow page")
    # The plan shows each region's canvas and how many Celery tasks it publishes.
    wait_for(lambda: "Published as" in css(driver, "[data-plan]").text, what="published plan")
    assert "Region from start" in css(driver, "[data-plan]").text
    type_into(driver, "#run-input", json.dumps({"name": "Ada"}))
    click(driver, "[data-run-form] button[type=submit]")
    wait_for(lambda: "/executions/" in driver.current_url, what="execution page")
    wait_for(lambda: css(driver, "[data-live]").is_displayed(), what="live badge while running")
    wait_for(
        lambda: css(driver, "[data-status] .badge").text == "succeeded",
        what="execution succeeded",
    )
    nodes = {
        el.get_attribute("data-node-id"): el.get_attribute("data-status")
        for el in all_css(driver, "[data-graph] [data-node-id]")
    }
    assert nodes == dict.fromkeys(
        ["start", "greet", "split", "a", "nap", "merge", "end"], "succeeded"
    )
    bars = all_css(driver, "[data-gantt] .gantt-row")
    assert {b.get_attribute("data-node-id") for b in bars} == set(nodes)
    assert {b.get_attribute("data-status") for b in bars} == {"succeeded"}
    assert not css(driver, "[data-live]").is_displayed()
    output = json.loads(css(driver, "[data-output]").text)
    assert output["a"] == "Hello Ada"
    # The step panel shows a node's input and output on click.
    click(driver, f"[data-graph] {node(driver, 'greet')}")
    assert "Hello Ada" in css(driver, "[data-step]").text


def test_cancel_a_running_execution_from_its_page(live: Live, driver: Any) -> None:
    workflow = live.api(
        "POST",
        "/api/workflows",
        {
            "name": "sleepy",
            "definition": {
                "nodes": [
                    {"id": "start", "type": "start"},
                    {"id": "sleep", "type": "delay", "config": {"seconds": 30}},
                    {"id": "end", "type": "end"},
                ],
                "edges": [
                    {"source": "start", "target": "sleep"},
                    {"source": "sleep", "target": "end"},
                ],
            },
        },
    )
    execution = live.api("POST", "/api/executions", {"workflow_id": workflow["id"]})
    driver.get(f"{live.url}/executions/{execution['id']}")
    wait_for(
        lambda: (
            css(driver, f"[data-graph] {node(driver, 'sleep')}").get_attribute("data-status")
            in {"running", "waiting"}
        ),
        what="sleeping",
    )
    click(driver, "[data-action=cancel]")
    driver.switch_to.alert.accept()
    wait_for(lambda: css(driver, "[data-status] .badge").text == "cancelled", what="cancelled")
    assert live.api("GET", f"/api/executions/{execution['id']}")["status"] == "cancelled"


def test_every_page_renders_without_script_errors(live: Live, driver: Any) -> None:
    for path, ready in [
        ("/", "[data-status-counts] .stat"),
        ("/workflows", "[data-list] table, [data-list] .empty"),
        ("/executions", "[data-list] table, [data-list] .empty"),
        ("/triggers", "[data-list] table, [data-list] .empty"),
        ("/dead-letters", "[data-list] table, [data-list] .empty"),
        ("/queues", "[data-queues] table, [data-queues] .empty"),
        ("/audit", "[data-list] table"),
    ]:
        driver.get(live.url + path)
        wait_for(lambda ready=ready: css(driver, ready), what=f"{path} content")


def test_dead_letter_can_be_inspected_and_replayed(live: Live, driver: Any) -> None:
    workflow = live.api(
        "POST",
        "/api/workflows",
        {
            "name": "doomed",
            "definition": {
                "nodes": [
                    {"id": "start", "type": "start"},
                    {
                        "id": "call",
                        "type": "action",
                        "config": {
                            "method": "GET",
                            "url": "http://127.0.0.1:1/",
                            "timeout_seconds": 2,
                        },
                        "retry": {"max_attempts": 1},
                    },
                    {"id": "end", "type": "end"},
                ],
                "edges": [
                    {"source": "start", "target": "call"},
                    {"source": "call", "target": "end"},
                ],
            },
        },
    )
    execution = live.api("POST", "/api/executions", {"workflow_id": workflow["id"]})
    driver.get(f"{live.url}/executions/{execution['id']}")
    wait_for(lambda: css(driver, "[data-status] .badge").text == "failed", what="failed")
    assert not css(driver, "[data-action=retry]").get_attribute("hidden")
    assert (
        css(driver, f"[data-graph] {node(driver, 'call')}").get_attribute("data-status") == "failed"
    )

    driver.get(f"{live.url}/dead-letters?execution_id={execution['id']}")
    click(driver, "[data-list] tbody tr button.link")
    wait_for(lambda: "connection" in css(driver, "[data-detail]").text, what="the error")
    assert "canvasflow.run_node" in css(driver, "[data-detail]").text  # the Celery message
    click(driver, "[data-detail] .btn.primary")
    wait_for(lambda: "Replay queued" in css(driver, "[data-detail]").text, what="replayed")
    wait_for(lambda: "replayed" in css(driver, "[data-list]").text, what="listed as replayed")


def test_create_toggle_and_delete_a_webhook_trigger(live: Live, driver: Any) -> None:
    from selenium.webdriver.support.ui import Select

    workflow = live.api(
        "POST", "/api/workflows", {"name": "hooked", "definition": {
            "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
            "edges": [{"source": "start", "target": "end"}],
        }},
    )  # fmt: skip
    driver.get(f"{live.url}/triggers")
    wait_for(lambda: css(driver, f"[data-workflow-select] option[value='{workflow['id']}']"))
    Select(css(driver, "[data-workflow-select]")).select_by_value(workflow["id"])
    click(driver, "[data-create-form] input[value=webhook]")
    assert css(driver, "[data-type-fields=webhook]").is_displayed()
    click(driver, "[data-create-form] button[type=submit]")
    url_field = wait_for(lambda: css(driver, "[data-created] .copy-field"), what="webhook url")
    url = url_field.get_attribute("value")
    assert url.startswith(f"{live.url}/api/webhooks/")
    started = requests.post(url, json={"hello": "world"}, timeout=10)
    assert started.status_code == 202

    trigger_id = url.rsplit("/", 1)[1]
    switch = f"[aria-label='Disable trigger {trigger_id}']"
    click(driver, switch)
    wait_for(lambda: css(driver, f"[aria-label='Enable trigger {trigger_id}']"), what="disabled")
    assert live.api("GET", f"/api/triggers/{trigger_id}")["enabled"] is False
    row = css(driver, f"[aria-label='Enable trigger {trigger_id}']").find_element(
        "xpath", "./ancestor::tr"
    )
    row.find_element("css selector", ".btn.danger").click()
    driver.switch_to.alert.accept()
    wait_for(
        lambda: not all_css(driver, f"[aria-label='Enable trigger {trigger_id}']"), what="gone"
    )
