"""The OpenAPI 3.1 description every CyNode app serves: ``GET /openapi.json`` and a docs page at ``/openapi``.

Litestar derives paths, methods and parameters from the route handlers. Handlers answer raw JSON
(the shared codec does the typing), so what litestar cannot see is added here: every operation
lists the RFC 9457 problem responses it can give, by what the route is: 400/413/429/500 everywhere
(bad input, body limit, throttles, internal), 401 where a token is checked, 403 on admin routes,
404 where a path names a resource, 409/415 where a JSON body is read. The docs page is a small
self-contained HTML page (no CDN), so it works on an air-gapped host.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar, Request, get
from litestar.enums import MediaType, OpenAPIMediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.routes import HTTPRoute

from cynode import __version__
from cynode.contracts.problem import PROBLEM_CONTENT_TYPE

OPENAPI_PATH: Final = "/openapi.json"
DOCS_PATH: Final = "/openapi"
"""Litestar's OpenAPI router lives here (the docs page at its root); ``/openapi.json`` sits beside it."""
PROBLEM_SCHEMA_REF: Final = "#/components/schemas/Problem"
UNDOCUMENTED_PATHS: Final = frozenset({"/healthz", "/readyz"})
"""Plain-text probes, not API operations."""
_ADMIN_PROVIDER: Final = "provide_admin_user"  # the dependency cynode.identity.guard.admin_user_provider gives
_PUBLIC_PATH_SUFFIXES: Final = ("/auth/login", "/auth/refresh", "/nodes/register")
_BODY_METHODS: Final = frozenset({"post", "put", "patch"})

_PROBLEM_SCHEMA: Final = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
_DESCRIPTIONS: Final = {
    "400": "Invalid request (malformed body, bad parameter)",
    "401": "Missing, invalid or expired token",
    "403": "Admin required",
    "404": "Not found",
    "409": "Conflict with the current state",
    "413": "Request body too large",
    "415": "Body is not application/json",
    "429": "Throttled or busy; retry later",
    "500": "Internal error (nothing internal is disclosed)",
}


def _is_admin(handler: HTTPRouteHandler) -> bool:
    return any(getattr(provide.dependency, "__name__", "") == _ADMIN_PROVIDER
               for provide in handler.resolve_dependencies().values())  # fmt: skip


def error_statuses(path: str, method: str, handler: HTTPRouteHandler) -> list[str]:
    """The problem responses an operation can answer with (see the module docstring)."""
    statuses = {"400", "413", "429", "500"}
    if not path.endswith(_PUBLIC_PATH_SUFFIXES):
        statuses.add("401")
    if _is_admin(handler):
        statuses.add("403")
    if "{" in path:
        statuses.add("404")
    if method in _BODY_METHODS:
        statuses |= {"409", "415"}
    return sorted(statuses)


def _handlers_by_operation(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                found[(route.path_format, method.lower())] = handler
    return found


def document_problems(app: Litestar, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses to every operation of ``schema`` (litestar's dict), once."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" in components:
        return schema
    components["Problem"] = _PROBLEM_SCHEMA
    handlers = _handlers_by_operation(app)
    problem_content = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            handler = handlers.get((path, method))
            if handler is None or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, method, handler):
                responses[status] = {"description": _DESCRIPTIONS[status], "content": problem_content}
            if method in _BODY_METHODS and "requestBody" not in operation:
                operation["requestBody"] = {
                    "required": False,
                    "content": {MediaType.JSON.value: {"schema": {"type": "object"}}},
                }
    return schema


class ProblemDocumentingJson(JsonRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, document_problems(request.app, openapi_schema))


@get(OPENAPI_PATH, media_type=OpenAPIMediaType.OPENAPI_JSON, include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> bytes:
    """The schema at the conventional top-level path (litestar's own router serves it under DOCS_PATH)."""
    return JsonRenderPlugin.render_json(request, document_problems(request.app, request.app.openapi_schema.to_schema()))


_DOCS_PAGE: Final = """<!doctype html>
<html><head><meta charset="utf-8"><title>CyNode API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}code{background:#eee;padding:0 .3em}
h2{margin-top:1.5em;font-size:1.1em}.m{display:inline-block;width:4.5em;font-weight:bold}td{padding:.1em .8em}</style>
</head><body><h1 id="title">CyNode API</h1>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are RFC 9457 problem
documents (<code>application/problem+json</code>).</p><div id="ops">loading...</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
  const out = [];
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map(p => p.name + " (" + p.in + ")").join(", ");
      const codes = Object.keys(op.responses || {}).join(" ");
      out.push("<h2><span class=m>" + method.toUpperCase() + "</span><code>" + path + "</code></h2>" +
        "<table><tr><td>summary</td><td>" + (op.summary || op.operationId || "") + "</td></tr>" +
        "<tr><td>parameters</td><td>" + (params || "-") + "</td></tr>" +
        "<tr><td>responses</td><td>" + codes + "</td></tr></table>");
    }
  }
  document.getElementById("ops").innerHTML = out.join("");
});
</script></body></html>
"""


class DocsPage(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _DOCS_PAGE.encode()


def openapi_config(title: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=title,
        version=__version__,
        path=DOCS_PATH,
        render_plugins=[DocsPage(), ProblemDocumentingJson(path=OPENAPI_PATH)],
    )
