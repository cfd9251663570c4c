"""``call: http`` and ``call: openapi``: build the request, authenticate, shape the response.

The request goes out through ``host.http({method, uri, headers, body}, timeout)``, which
answers ``{statusCode, headers, content: bytes}`` and never follows redirects.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import yaml

from ..expressions import is_expression_string
from .dataflow import template
from .errors import WorkflowError
from .uri import expand

__all__ = ["authorization", "http_request", "openapi_request", "shape_response"]

TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded")


class _Runner(Protocol):
    use: Mapping[str, Any]
    secrets: Mapping[str, Any]


def _uri(value: Any, data: Any, variables: Mapping[str, Any], pointer: str) -> str:
    if isinstance(value, str) and "${" in value:
        value = template(value, data, variables, pointer)
    elif isinstance(value, str):
        try:
            value = expand(value, data)
        except ValueError as exc:
            raise WorkflowError.standard("expression", str(exc), instance=pointer) from exc
    if not isinstance(value, str) or not value:
        raise WorkflowError.standard(
            "configuration", f"the endpoint URI is not a string: {value!r}", instance=pointer
        )
    return value


def _with_query(uri: str, query: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append(
                    (str(key), json.dumps(item) if isinstance(item, bool | dict) else str(item))
                )
    if not pairs:
        return uri
    return uri + ("&" if "?" in uri else "?") + urlencode(pairs)


def _endpoint(endpoint: Any) -> tuple[Any, Any]:
    if isinstance(endpoint, dict):
        return endpoint.get("uri"), endpoint.get("authentication")
    return endpoint, None


def http_request(
    runner: _Runner, args: Mapping[str, Any], data: Any, variables: Mapping[str, Any], pointer: str
) -> dict[str, Any]:
    """The request of a ``call: http`` task, authenticated."""
    uri, auth = _endpoint(args.get("endpoint"))
    uri = _uri(uri, data, variables, f"{pointer}/with/endpoint")
    method = template(args.get("method") or "get", data, variables, f"{pointer}/with/method")
    headers = template(args.get("headers") or {}, data, variables, f"{pointer}/with/headers")
    if isinstance(headers, str):  # a whole ${ } that built the map
        headers = {}
    query = template(args.get("query") or {}, data, variables, f"{pointer}/with/query")
    request: dict[str, Any] = {
        "method": str(method),
        "uri": _with_query(uri, query if isinstance(query, dict) else {}),
        "headers": {str(k): str(v) for k, v in (headers or {}).items() if v is not None},
    }
    if "body" in args:
        request["body"] = template(args["body"], data, variables, f"{pointer}/with/body")
    if auth is not None:
        authorize(runner, request, auth, data, variables, f"{pointer}/with/endpoint/authentication")
    return request


def _policy(runner: _Runner, auth: Any, pointer: str) -> dict[str, Any]:
    named = runner.use.get("authentications") or {}
    if isinstance(auth, dict) and set(auth) == {"use"}:
        auth = auth["use"]
    if isinstance(auth, str):
        if auth not in named:
            raise WorkflowError.standard(
                "configuration",
                f"authentication {auth!r} is not defined in use.authentications",
                instance=pointer,
            )
        auth = named[auth]
    if not isinstance(auth, dict):
        raise WorkflowError.standard(
            "configuration", "authentication must be an object", instance=pointer
        )
    return auth


def _secret(runner: _Runner, name: Any, pointer: str) -> Any:
    if name not in runner.secrets:
        raise WorkflowError.standard(
            "configuration",
            f"secret {name!r} is not configured on this Canvasflow (settings.extra['secrets'])",
            instance=pointer,
        )
    return runner.secrets[name]


def authorization(
    runner: _Runner, auth: Any, data: Any, variables: Mapping[str, Any], pointer: str
) -> tuple[str, str]:
    """(scheme, parameter) of a basic or bearer policy; other schemes are configuration errors."""
    policy = _policy(runner, auth, pointer)
    if "basic" in policy:
        basic = policy["basic"]
        if isinstance(basic, dict) and "use" in basic:
            basic = _secret(runner, basic["use"], pointer)
        basic = template(basic, data, variables, f"{pointer}/basic")
        if not isinstance(basic, dict) or basic.get("username") is None:
            raise WorkflowError.standard(
                "configuration",
                "basic authentication needs a username and a password",
                instance=pointer,
            )
        raw = f"{basic.get('username')}:{basic.get('password') or ''}".encode()
        return "Basic", base64.b64encode(raw).decode("ascii")
    if "bearer" in policy:
        bearer = policy["bearer"]
        if isinstance(bearer, dict) and "use" in bearer:
            bearer = _secret(runner, bearer["use"], pointer)
        bearer = template(bearer, data, variables, f"{pointer}/bearer")
        token = bearer.get("token") if isinstance(bearer, dict) else bearer
        if not token:
            raise WorkflowError.standard(
                "configuration", "bearer authentication needs a token", instance=pointer
            )
        return "Bearer", str(token)
    scheme = next(iter(policy), "?")
    raise WorkflowError.standard(
        "configuration",
        f"{scheme} authentication is not supported by Canvasflow (basic and bearer are)",
        instance=pointer,
    )


def authorize(
    runner: _Runner,
    request: dict[str, Any],
    auth: Any,
    data: Any,
    variables: Mapping[str, Any],
    pointer: str,
) -> None:
    """Set the Authorization header of ``request`` from an authentication policy."""
    scheme, parameter = authorization(runner, auth, data, variables, pointer)
    request["headers"]["Authorization"] = f"{scheme} {parameter}"


def decode(response: Mapping[str, Any]) -> Any:
    """JSON and text content deserialized; anything else base64-encoded, as the spec says."""
    body: bytes = response.get("content") or b""
    if not body:
        return None
    ctype = next(
        (str(v) for k, v in (response.get("headers") or {}).items() if k.lower() == "content-type"),
        "",
    ).lower()
    if "json" in ctype or (not ctype and body[:1] in (b"{", b"[")):
        try:
            return json.loads(body)
        except ValueError:
            return body.decode("utf-8", errors="replace")
    if ctype.startswith(TEXT_TYPES) or not ctype or "yaml" in ctype:
        return body.decode("utf-8", errors="replace")
    return base64.b64encode(body).decode("ascii")


def shape_response(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    output: str,
    redirect: bool,
    pointer: str,
) -> Any:
    """The raw output for ``output: content|response|raw``; non-2xx is a communication error."""
    status = int(response["statusCode"])
    if not 200 <= status < (400 if redirect else 300):
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "HTTP error"
        raise WorkflowError.standard(
            "communication",
            f"{str(request['method']).upper()} {request['uri']} answered {status}",
            status=status,
            title=title,
            instance=pointer,
        )
    if output == "raw":
        return base64.b64encode(response.get("content") or b"").decode("ascii")
    content = decode(response)
    if output == "response":
        return {
            "request": {
                "method": request["method"],
                "uri": request["uri"],
                "headers": dict(request.get("headers") or {}),
            },
            "statusCode": status,
            "headers": dict(response.get("headers") or {}),
            "content": content,
        }
    return content


# --------------------------------------------------------------------------- OpenAPI


def parse_document(response: Mapping[str, Any], uri: str, pointer: str) -> dict[str, Any]:
    """An OpenAPI (or Swagger 2.0) document from its HTTP response, JSON or YAML."""
    if not 200 <= int(response["statusCode"]) < 300:
        raise WorkflowError.standard(
            "communication",
            f"GET {uri} answered {response['statusCode']} for the OpenAPI document",
            status=int(response["statusCode"]),
            instance=pointer,
        )
    try:
        document = yaml.safe_load((response.get("content") or b"").decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WorkflowError.standard(
            "configuration",
            f"the OpenAPI document at {uri} is not JSON nor YAML: {exc}",
            instance=pointer,
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise WorkflowError.standard(
            "configuration", f"{uri} is not an OpenAPI document (no paths)", instance=pointer
        )
    return document


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _base_url(document: dict[str, Any], document_uri: str) -> str:
    if "swagger" in document:
        parts = urlsplit(document_uri)
        schemes = document.get("schemes") or [parts.scheme]
        scheme = parts.scheme if parts.scheme in schemes else schemes[0]
        return f"{scheme}://{document.get('host') or parts.netloc}{document.get('basePath') or ''}"
    servers = document.get("servers") or [{"url": "/"}]
    server = servers[0] if isinstance(servers[0], dict) else {"url": "/"}
    url = str(server.get("url") or "/")
    for name, var in (server.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str((var or {}).get("default", "")))
    return urljoin(document_uri, url)


def openapi_request(
    runner: _Runner,
    document: dict[str, Any],
    document_uri: str,
    args: Mapping[str, Any],
    data: Any,
    variables: Mapping[str, Any],
    pointer: str,
) -> dict[str, Any]:
    """The HTTP request for ``operationId`` with ``parameters`` placed where the document says."""
    operation_id = args.get("operationId")
    found = None
    for path, item in document["paths"].items():
        for method in _METHODS:
            op = (item or {}).get(method)
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                found = (path, method, op, list((item or {}).get("parameters") or []))
    if found is None:
        raise WorkflowError.standard(
            "configuration",
            f"operation {operation_id!r} is not in the OpenAPI document {document_uri}",
            instance=pointer,
        )
    path, method, op, shared = found
    params = template(args.get("parameters") or {}, data, variables, f"{pointer}/with/parameters")
    params = dict(params) if isinstance(params, dict) else {}
    declared = {
        (p.get("name"), p.get("in"))
        for p in shared + list(op.get("parameters") or [])
        if isinstance(p, dict) and "$ref" not in p
    }
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    body: Any = None
    has_body = "requestBody" in op
    for name, place in declared:
        if name not in params:
            continue
        value = params.pop(name)
        if place == "path":
            path = path.replace("{" + name + "}", expand("{v}", {"v": value}))
        elif place == "query":
            query[name] = value
        elif place == "header":
            headers[name] = str(value)
        elif place in ("body", "formData"):
            has_body = True
            body = value if place == "body" else {**(body or {}), name: value}
    if has_body and body is None:
        body = params.pop("body", None) if "body" in params else (params or None)
        params = {}
    query.update(params)  # undeclared parameters go to the query string
    request: dict[str, Any] = {
        "method": method,
        "uri": _with_query(_base_url(document, document_uri).rstrip("/") + path, query),
        "headers": headers,
    }
    if body is not None:
        request["body"] = body
    if args.get("authentication") is not None:
        authorize(
            runner,
            request,
            args["authentication"],
            data,
            variables,
            f"{pointer}/with/authentication",
        )
    return request


def document_uri(
    args: Mapping[str, Any], data: Any, variables: Mapping[str, Any], pointer: str
) -> tuple[str, Any]:
    """The OpenAPI document's URI and its authentication, if any."""
    document = args.get("document") or {}
    uri, auth = _endpoint(document.get("endpoint") if isinstance(document, dict) else None)
    if is_expression_string(uri):
        uri = template(uri, data, variables, f"{pointer}/with/document")
    return _uri(uri, data, variables, f"{pointer}/with/document"), auth
