"""The OpenAPI 3.1 document is generated from the views and describes them truthfully."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator


@pytest.fixture
def doc(client) -> dict[str, Any]:
    response = client.get("/api/openapi.json")  # public
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def iter_refs(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_refs(value)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_document_is_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Canvasflow"
    assert doc["info"]["version"]


def test_workflow_paths_are_listed(doc):
    paths = doc["paths"]
    assert {"get", "post"} <= paths["/api/workflows"].keys()
    assert {"get", "put", "delete"} <= paths["/api/workflows/{workflow_id}"].keys()
    assert "get" in paths["/api/workflows/{workflow_id}/versions"]
    version = paths["/api/workflows/{workflow_id}/versions/{version}"]["get"]
    assert {p["name"]: p["schema"]["type"] for p in version["parameters"]} == {
        "workflow_id": "string",
        "version": "integer",
    }
    assert "get" in paths["/api/observability/audit"]
    assert "get" in paths["/api/health"]
    assert not any(path.startswith("/api/docs") for path in paths)


def test_create_documents_json_and_yaml_bodies_and_responses(doc):
    create = doc["paths"]["/api/workflows"]["post"]
    content = create["requestBody"]["content"]
    body_schema = resolve(doc, content["application/json"]["schema"]["$ref"])
    assert {"name", "definition"} <= set(body_schema["required"])
    assert "application/yaml" in content
    created = resolve(
        doc, create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert {"id", "version", "definition", "created_at"} <= created["properties"].keys()
    problem = create["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert resolve(doc, problem["$ref"])["properties"].keys() >= {
        "type",
        "title",
        "status",
        "errors",
    }
    assert "204" in doc["paths"]["/api/workflows/{workflow_id}"]["delete"]["responses"]


def test_bearer_security_is_documented(doc):
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/api/health"]["get"]["security"] == []
    assert doc["paths"]["/api/openapi.json"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/api/workflows"]["get"]


def test_every_ref_resolves_and_schemas_are_json_schema_2020_12(doc):
    for ref in iter_refs(doc):
        resolve(doc, ref)
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_docs_page_lists_operations_offline(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "/api/workflows/{workflow_id}/versions" in html
    assert "POST" in html and "/api/openapi.json" in html
    assert "<script" not in html  # works with no network


def test_interactive_docs_point_at_our_document(client):
    html = client.get("/api/docs/swagger").get_data(as_text=True)
    assert "/api/openapi.json" in html
    assert client.get("/api/docs/nope").status_code == 404
