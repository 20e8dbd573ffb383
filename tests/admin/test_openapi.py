"""Every app serves OpenAPI 3.1 at /openapi.json listing each of its routes with its problem responses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from cynode.http.openapi import DOCS_PATH, OPENAPI_PATH, UNDOCUMENTED_PATHS
from cynode.settings import Role
from tests.fixtures.stack import RunningStack, StackFactory, start_all_in_one
from tests.fixtures.tasks import TASK_ENV


@pytest.fixture
def everything(stack_factory: StackFactory, tmp_path: Path) -> RunningStack:
    return start_all_in_one(
        stack_factory, tmp_path, node_slug="openapi-node", env=TASK_ENV,
        node_yaml_extra="inference:\n  mode: disabled\n",
    )  # fmt: skip


def app_operations(app: Litestar) -> set[tuple[str, str]]:
    return {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute)
        and route.path not in UNDOCUMENTED_PATHS
        and not route.path.startswith((OPENAPI_PATH, DOCS_PATH))
        for handler in route.route_handlers
        if handler.resolve_include_in_schema()  # the web console's pages are left out of the API on purpose
        for method in handler.http_methods
        if method not in ("OPTIONS", "HEAD")
    }


def test_every_app_documents_every_route_with_its_problem_responses(everything: RunningStack) -> None:
    for role in (Role.GATEWAY, Role.ORCHESTRATOR, Role.NODE):
        client = everything.client(role)
        response = client.get(OPENAPI_PATH)
        assert response.status_code == 200, (role, response.text)
        schema: dict[str, Any] = response.json()
        assert schema["openapi"].startswith("3.1")
        documented = {(path, method) for path, ops in schema["paths"].items() for method in ops}
        app = everything.stack.apps[role].app
        assert app_operations(app) <= documented, role
        assert app_operations(app)
        problem = {"$ref": "#/components/schemas/Problem"}
        for path, method in app_operations(app):
            responses = schema["paths"][path][method]["responses"]
            for status in ("400", "413", "500"):
                assert responses[status]["content"]["application/problem+json"]["schema"] == problem, (path, method)
        docs = client.get(DOCS_PATH)
        assert docs.status_code == 200
        assert "/openapi.json" in docs.text


def test_admin_and_signed_in_routes_document_403_and_401(everything: RunningStack) -> None:
    schema = everything.client(Role.GATEWAY).get(OPENAPI_PATH).json()
    assert "403" in schema["paths"]["/v1/nodes/{node_ref}/drain"]["post"]["responses"]
    assert "403" not in schema["paths"]["/v1/tasks"]["get"]["responses"]
    assert "401" in schema["paths"]["/v1/tasks"]["get"]["responses"]
    assert "401" not in schema["paths"]["/v1/auth/login"]["post"]["responses"]
    assert "404" in schema["paths"]["/v1/tasks/{task_ref}"]["get"]["responses"]
