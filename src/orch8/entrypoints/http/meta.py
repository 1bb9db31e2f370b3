"""About the server itself, at the root only: `/info`, `/metrics`, `/swagger-ui`.

As in Orch8, `/info` is public (like `/health/*`), while `/metrics` and the
Swagger UI are meant to sit behind the API key: every route of this module is
in `ROUTES`, so whatever guards routes finds them in one place.

`/metrics` is the Prometheus text format. `request_metrics` (the outermost
middleware) counts every answered request by method, by the *template* of the
route it matched (`/api/v1/instances/{id}`, never the raw path: an id in a
label would make a series per instance) and by status.

The Swagger UI is served from the files the `swagger-ui-bundle` package ships:
the page and everything it loads come from this server, so it works offline.
"""

from __future__ import annotations

from pathlib import Path
from time import perf_counter

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http.deps import deps_of
from orch8.entrypoints.http.errors import Handler

INFO_PATH = "/info"
METRICS_PATH = "/metrics"
SWAGGER_PATH = "/swagger-ui"
# The document the page shows; `openapi.DOC_PATH` (a test checks they agree: that
# module assembles the document from this one's paths, so it cannot be imported here).
SPEC_PATH = "/api-docs/openapi.json"

# The route label of a request no route matched (404, 405): one series for all.
UNMATCHED = "unmatched"


async def info(request: web.Request) -> web.Response:
    """Orch8's `/info` shape (`version`, `env_label`, `env_color`), plus the storage
    kind and the features this build serves."""
    about = deps_of(request).info
    return web.json_response(
        {
            "version": about.version,
            "env_label": about.env_label,
            "env_color": about.env_color,
            "storage": about.storage,
            "features": list(about.features),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    exposition = await deps_of(request).metrics.scrape()
    response = web.Response(body=exposition.body)
    response.headers["Content-Type"] = exposition.content_type
    return response


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every answered request (outermost, so it sees the status sent).
    A request cancelled before it ends (the client left, the server stopped) is not
    counted: it was not answered."""
    started = perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _served(request, exc.status, started)
        raise
    except Exception:
        _served(request, 500, started)
        raise
    _served(request, response.status, started)
    return response


def _served(request: web.Request, status: int, started: float) -> None:
    deps_of(request).metrics.http_request_served(
        request.method, _route_of(request), status, perf_counter() - started
    )


# Swagger UI -------------------------------------------------------------------
# The files the page loads, and their types (not guessed: the guess depends on the host).
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
# Paths relative to the page (`/swagger-ui` sits at the root), so the UI also works
# behind a proxy that mounts the server under a prefix. `validatorUrl: null`: the
# UI would otherwise send the document to an outside validator.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>orch8 API</title>
<link rel="stylesheet" type="text/css" href="swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="swagger-ui/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="swagger-ui/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui/swagger-ui-bundle.js" charset="utf-8"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "api-docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
</script>
</body>
</html>
"""


def _asset_dir() -> Path:
    return Path(str(swagger_ui_path))


async def swagger_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8")


async def swagger_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    kind = _ASSETS.get(name)
    if kind is None:
        raise web.HTTPNotFound(text="no such Swagger UI file")
    headers = {"Content-Type": kind, "Cache-Control": "max-age=86400"}
    return web.FileResponse(_asset_dir() / name, headers=headers)


ROUTES = [
    ("GET", INFO_PATH, info),
    ("GET", METRICS_PATH, metrics),
    ("GET", SWAGGER_PATH, swagger_page),
    ("GET", SWAGGER_PATH + "/{file}", swagger_asset),
]

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "Info": doc.object_schema(
        ["version", "env_label", "env_color", "storage", "features"],
        version={"type": "string", "description": "The orch8 package's version"},
        env_label=doc.nullable(doc.STR),
        env_color=doc.nullable(doc.STR),
        storage={"type": "string", "enum": ["sqlite", "postgres", "memory", "other"]},
        features=doc.array_of(doc.STR),
    ),
}


def _text(description: str, media: str) -> doc.Json:
    return {"description": description, "content": {media: {"schema": doc.STR}}}


OPENAPI_PATHS: doc.Paths = {
    INFO_PATH: {
        "get": doc.op(
            "info",
            "Version, environment label, storage kind and features",
            "health",
            {"200": doc.returns(doc.ref("Info"), "About this server")},
        )
    },
    METRICS_PATH: {
        "get": doc.op(
            "metrics",
            "Prometheus metrics (text exposition format)",
            "meta",
            {"200": _text("Every metric (see docs/metrics.md)", "text/plain")},
        )
    },
    SWAGGER_PATH: {
        "get": doc.op(
            "swaggerUi",
            "Swagger UI for the OpenAPI document",
            "meta",
            {"200": _text("The page", "text/html")},
        )
    },
    SWAGGER_PATH + "/{file}": {
        "get": doc.op(
            "swaggerUiAsset",
            "A script, stylesheet or icon of the Swagger UI page",
            "meta",
            {
                "200": {"description": "The file"},
                "404": doc.returns_error("No such file"),
            },
            params=[doc.path_param("file", "File name, e.g. swagger-ui-bundle.js")],
        )
    },
}
