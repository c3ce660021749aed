"""The interactive docs pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), from the service's own
assets: a page that loads nothing from the internet works on a closed network.

FastAPI's own pages load Swagger UI's script and stylesheet, ReDoc's script and a favicon from
public CDNs. Here the app is built without them (`docs_url=None`, `redoc_url=None`) and serves
the same pages pointing at the files under `/docs-assets/`: Swagger UI (`swagger-ui-bundle.js`,
`swagger-ui.css`), ReDoc (`redoc.standalone.js`) and `favicon.png`, in the versions below, as
vendored by the PyPI package `fastapi-offline`, whose wheel
`requirements.lock` pins by hash. No route here needs a token and no request has a body, so
neither the authentication dependencies nor the body limit stand in their way.

Both pages carry a Content-Security-Policy that lets them load only from the service itself
(plus what the two scripts make in the page: inline styles, `data:` images, ReDoc's search
worker from a `blob:`). It keeps the page closed even where the vendored code names a host:
ReDoc 2.5.3 shows its "API docs by Redocly" badge with a logo from Redocly's CDN, which the
browser then does not fetch (the badge's text stays, its image does not).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"
# The files the pages load, all of them under ASSETS_PATH.
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
ASSETS = (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON)
# What fastapi-offline 1.7.7 vendors (tests/unit/test_docs_pages.py reads them in the files).
SWAGGER_UI_VERSION = "5.32.6"
REDOC_VERSION = "2.5.3"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        # FastAPI's pages start the UI with an inline script.
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
    )
)
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


def install(app: FastAPI) -> None:
    """`/docs`, `/redoc` and the assets they load, on an app built without FastAPI's own pages."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None: its pages load from a CDN")
    for name in ASSETS:
        if not (ASSETS_DIRECTORY / name).is_file():  # a fastapi-offline that no longer ships it
            raise FileNotFoundError(ASSETS_DIRECTORY / name)
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=f"{request.scope.get('root_path', '')}{openapi_url}",
            title=f"{app.title} — Swagger UI",
            swagger_js_url=asset(request, SWAGGER_JS),
            swagger_css_url=asset(request, SWAGGER_CSS),
            swagger_favicon_url=asset(request, FAVICON),
            oauth2_redirect_url=None,  # bearer tokens only: no OAuth2 flow to come back from
            # No badge from the public validator (validator.swagger.io) under the document.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
        page.headers.update(_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=f"{request.scope.get('root_path', '')}{openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=asset(request, REDOC_JS),
            redoc_favicon_url=asset(request, FAVICON),
            with_google_fonts=False,
        )
        page.headers.update(_HEADERS)
        return page
