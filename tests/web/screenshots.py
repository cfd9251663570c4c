"""Take the README screenshots of the web admin from a running server.

    CANVASFLOW_DATA_DIR=/tmp/shots canvasflow dev --port 8350     # prints an API key
    python -m tests.web.screenshots --url http://127.0.0.1:8350 --key cf_... --out docs/screenshots

Seeds a few demo workflows, triggers and executions (one failing, one still running)
through the API, then saves 1280x800 PNGs of each page. Not a test: pytest skips it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import requests

from tests.web.browser import chrome, sign_in

SHOWCASE = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "score",
            "type": "transform",
            "config": {
                "expression": '{name: .input.name, tier: (if .input.vip then "vip" else "std" end)}'
            },
        },
        {
            "id": "is_vip",
            "type": "condition",
            "config": {"expression": '.steps.score.output.tier == "vip"'},
        },
        {"id": "wait", "type": "delay", "config": {"seconds": 2}},
        {"id": "split", "type": "fork"},
        {"id": "a", "type": "transform", "config": {"expression": "{name: .input.name}"}},
        {
            "id": "b",
            "type": "transform",
            "config": {"mapping": {"greeting": "Hello ${ .input.name }"}},
        },
        {"id": "merge", "type": "join"},
        {
            "id": "reply",
            "type": "webhook_response",
            "config": {"status": 200, "body": "${ .steps.merge.output }"},
        },
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "score"},
        {"source": "score", "target": "is_vip"},
        {"source": "is_vip", "target": "wait", "when": "true"},
        {"source": "is_vip", "target": "end", "when": "false"},
        {"source": "wait", "target": "split"},
        {"source": "split", "target": "a"},
        {"source": "split", "target": "b"},
        {"source": "a", "target": "merge"},
        {"source": "b", "target": "merge"},
        {"source": "merge", "target": "reply"},
        {"source": "reply", "target": "end"},
    ],
}
FAILING = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "prepare", "type": "transform", "config": {"expression": "{order: .input.order}"}},
        {
            "id": "charge",
            "type": "action",
            "config": {"method": "POST", "url": "http://127.0.0.1:1/charge", "timeout_seconds": 2},
            "retry": {"max_attempts": 3, "initial_seconds": 1, "max_seconds": 2},
        },
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "prepare"},
        {"source": "prepare", "target": "charge"},
        {"source": "charge", "target": "end"},
    ],
}
SLOW = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "fan", "type": "fork"},
        {"id": "quick", "type": "transform", "config": {"expression": "1"}},
        {"id": "nap", "type": "delay", "config": {"seconds": 20}},
        {"id": "short_nap", "type": "delay", "config": {"seconds": 3}},
        {"id": "gather", "type": "join"},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"source": "start", "target": "fan"},
        {"source": "fan", "target": "quick"},
        {"source": "fan", "target": "nap"},
        {"source": "fan", "target": "short_nap"},
        {"source": "quick", "target": "gather"},
        {"source": "nap", "target": "gather"},
        {"source": "short_nap", "target": "gather"},
        {"source": "gather", "target": "end"},
    ],
}


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def __call__(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.session.request(
            method, self.url + path, json=body, params=params, timeout=10
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def workflow(self, name: str, definition: dict[str, Any], description: str) -> str:
        found = self("GET", "/api/workflows", name=name)["items"]
        if found:
            return str(found[0]["id"])
        body = {"name": name, "description": description, "definition": definition}
        return str(self("POST", "/api/workflows", body)["id"])

    def run(self, workflow_id: str, input: Any = None) -> str:
        return str(
            self("POST", "/api/executions", {"workflow_id": workflow_id, "input": input})["id"]
        )

    def wait(self, execution_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self("GET", f"/api/executions/{execution_id}")["status"] in {"pending", "running"}:
            if time.monotonic() > deadline:
                raise SystemExit(f"execution {execution_id} did not finish")
            time.sleep(0.2)


def seed(api: Client) -> dict[str, str]:
    """Demo workflows, triggers and executions; the ids the screenshots need."""
    showcase = api.workflow(
        "greet-vip", SHOWCASE, "Condition, delay, fork/join and a webhook reply"
    )
    failing = api.workflow("charge-card", FAILING, "Calls a payment upstream that is down")
    slow = api.workflow("slow-fanout", SLOW, "Parallel delays")
    if not api("GET", "/api/triggers")["items"]:
        api(
            "POST",
            "/api/triggers",
            {
                "workflow_id": showcase,
                "type": "webhook",
                "config": {"mode": "sync", "secret": "s3cret"},
            },
        )
        api(
            "POST",
            "/api/triggers",
            {"workflow_id": showcase, "type": "webhook", "config": {"mode": "async"}},
        )
        api(
            "POST",
            "/api/triggers",
            {
                "workflow_id": slow,
                "type": "cron",
                "config": {"cron": "0 */6 * * *", "timezone": "Europe/Paris"},
            },
        )
        api(
            "POST",
            "/api/triggers",
            {
                "workflow_id": failing,
                "type": "manual",
                "config": {"input": {"order": 99}},
                "enabled": False,
            },
        )
    ids = {
        "workflow": showcase,
        "finished": api.run(showcase, {"name": "Ada", "vip": True}),
        "skipped": api.run(showcase, {"name": "Bob", "vip": False}),
        "failed": api.run(failing, {"order": 17}),
    }
    for key in ("finished", "skipped", "failed"):
        api.wait(ids[key])
    ids["running"] = api.run(slow, {"batch": 3})
    time.sleep(5)  # the quick branches finish; the long delay keeps it running
    return ids


def shoot(
    driver: Any,
    base: str,
    out: Path,
    name: str,
    path: str,
    clicks: tuple[str, ...] = (),
    wait: float = 1.5,
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.get(base + path)
    time.sleep(wait)
    for selector in clicks:
        element = driver.find_element(By.CSS_SELECTOR, selector)
        ActionChains(driver).move_to_element(element).click().perform()
        time.sleep(0.6)
    driver.save_screenshot(str(out / f"{name}.png"))
    print(f"{out / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8350")
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    api = Client(args.url, args.key)
    ids = seed(api)
    base = args.url.rstrip("/")
    with chrome() as driver:
        sign_in(driver, base, args.key)
        shoot(driver, base, args.out, "execution-running", f"/executions/{ids['running']}", wait=2)
        shoot(driver, base, args.out, "dashboard", "/", wait=2)
        shoot(driver, base, args.out, "workflow", f"/workflows/{ids['workflow']}")
        shoot(
            driver,
            base,
            args.out,
            "editor",
            f"/workflows/{ids['workflow']}/edit",
            ("[data-node-id=is_vip]",),
        )
        clicks = ("[data-add=start]", "[data-add=action]", "[data-add=transform]")
        shoot(
            driver,
            base,
            args.out,
            "editor-problems",
            "/workflows/new",
            (*clicks, "[data-action=validate]"),
        )
        shoot(
            driver,
            base,
            args.out,
            "execution-finished",
            f"/executions/{ids['finished']}",
            ("[data-graph] [data-node-id=merge]",),
        )
        shoot(
            driver,
            base,
            args.out,
            "execution-failed",
            f"/executions/{ids['failed']}",
            ("[data-graph] [data-node-id=charge]",),
        )
        shoot(driver, base, args.out, "executions", "/executions")
        shoot(driver, base, args.out, "triggers", "/triggers")
        shoot(
            driver,
            base,
            args.out,
            "dead-letters",
            "/dead-letters",
            ("[data-list] tbody tr button.link",),
        )
        shoot(driver, base, args.out, "queues", "/queues")
        shoot(driver, base, args.out, "audit", "/audit")


if __name__ == "__main__":
    main()
