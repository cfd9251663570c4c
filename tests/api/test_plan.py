"""GET /api/workflows/:id/plan: the regions, what each publishes, and Celery's own form."""

from __future__ import annotations

from typing import Any


def fan_out(width: int, branch: str = "transform") -> dict[str, Any]:
    config = (
        {"expression": ".node.input"}
        if branch == "transform"
        else {"method": "GET", "url": "https://example.com/x"}
    )
    nodes = [{"id": "s", "type": "start"}, {"id": "f", "type": "fork"}]
    nodes += [{"id": f"b{i}", "type": branch, "config": config} for i in range(width)]
    nodes += [{"id": "j", "type": "join"}, {"id": "e", "type": "end"}]
    edges = [("s", "f")] + [("f", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "j") for i in range(width)] + [("j", "e")]
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in edges]}


def plan_of(client, auth, definition: dict[str, Any]) -> dict[str, Any]:
    created = client.post(
        "/api/workflows", json={"name": "p", "definition": definition}, headers=auth
    )
    assert created.status_code == 201, created.get_json()
    response = client.get(f"/api/workflows/{created.get_json()['id']}/plan", headers=auth)
    assert response.status_code == 200
    return response.get_json()


def test_pure_branches_publish_as_a_chord_of_chunks(client, auth):
    body = plan_of(client, auth, fan_out(60))
    assert body["version"] == 1 and body["batch_nodes"] == 25
    [region] = body["regions"]
    # the region's structure: one chord with a header task per branch ...
    assert region["canvas"]["type"] == "chain"
    assert len(region["canvas"]["tasks"][2]["header"]) == 60
    # ... published as 3 chunks of 20 under the chord, plus two batches: 5 messages
    published = region["published"]
    assert [t["type"] for t in published["tasks"]] == ["batch", "chord"]
    assert [len(h["nodes"]) for h in published["tasks"][1]["header"]] == [20, 20, 20]
    assert published["tasks"][1]["body"] == {"type": "batch", "nodes": ["j", "e"]}
    assert region["tasks"] == 5
    celery = region["celery"]
    assert celery["subtask_type"] == "chain"
    chord = celery["kwargs"]["tasks"][1]
    assert chord["subtask_type"] == "chord"
    assert {h["task"] for h in chord["kwargs"]["header"]} == {"canvasflow.run_nodes"}


def test_branches_that_do_io_keep_a_task_each(client, auth):
    body = plan_of(client, auth, fan_out(3, branch="action"))
    [region] = body["regions"]
    header = region["published"]["tasks"][1]["header"]
    assert header == [{"type": "task", "node": f"b{i}"} for i in range(3)]
    assert region["tasks"] == 5  # (s, f), 3 actions, (j, e)


def test_plan_of_an_unknown_or_foreign_workflow_is_404(client, auth, other_auth, tiny_dag):
    assert client.get("/api/workflows/nope/plan", headers=auth).status_code == 404
    created = client.post(
        "/api/workflows", json={"name": "p", "definition": tiny_dag}, headers=auth
    ).get_json()
    response = client.get(f"/api/workflows/{created['id']}/plan", headers=other_auth)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert client.get(f"/api/workflows/{created['id']}/plan").status_code == 401
