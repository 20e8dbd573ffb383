"""Pages from the package's Jinja templates, and the package's static assets.

Templates autoescape everything, so job output, prompts and model answers reach the browser as
text; nothing in the console marks data as safe HTML. Static assets are read once from the package
(so they ship inside the wheel) and served under a content hash, which lets browsers cache them for
good while a new release is fetched at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any, Final

import jinja2
from litestar import MediaType, Response, get
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.http.problems import ProblemError

STATIC_PREFIX: Final = "/static"
_MEDIA_TYPES: Final = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_IMMUTABLE: Final = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    url: str


def load_assets() -> dict[str, Asset]:
    """Every file of the package's ``static`` folder, by name, with its cache-busting URL."""
    assets: dict[str, Asset] = {}
    for entry in resources.files("cynode.web").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if not entry.is_file() or suffix not in _MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        version = hashlib.sha256(body).hexdigest()[:16]
        assets[entry.name] = Asset(body, _MEDIA_TYPES[suffix], f"{STATIC_PREFIX}/{version}/{entry.name}")
    return assets


class Pages:
    """Renders the console's templates; ``asset_url`` is available to every template."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.PackageLoader("cynode.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.globals["asset_url"] = lambda name: assets[name].url

    def render(self, template: str, status: int = HTTPStatus.OK, **context: Any) -> Response[str]:
        html = self._environment.get_template(template).render(**context)
        return Response(html, status_code=status, media_type=MediaType.HTML)


def asset_routes(assets: dict[str, Asset]) -> list[ControllerRouterHandler]:
    @get(f"{STATIC_PREFIX}/{{version:str}}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
    def static_asset(version: FromPath[str], name: FromPath[str]) -> Response[bytes]:
        asset = assets.get(name)
        if asset is None or not asset.url.endswith(f"/{version}/{name}"):
            raise ProblemError(HTTPStatus.NOT_FOUND, "No such asset")
        return Response(asset.body, media_type=asset.media_type, headers={"Cache-Control": _IMMUTABLE})

    return [static_asset]
