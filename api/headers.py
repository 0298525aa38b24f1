"""Security headers on every response, and /docs served under the same policy.

Every response gets a Content-Security-Policy (pages that run scripts set their own, with
a nonce per response; everything else gets one that runs no script at all),
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (with the policy's
``frame-ancestors 'none'``) and a ``Referrer-Policy``. ``strict-origin-when-cross-origin``
rather than ``no-referrer``: tile servers such as OpenStreetMap's refuse requests that name
no referring site, and the origin alone says nothing about what was looked at.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from geogrid.core.settings import Settings
from maps import assets
from maps.base import content_security_policy, nonce_source, stamp_nonce

DOCS, OAUTH2_REDIRECT = "/docs", "/docs/oauth2-redirect"


class SecurityHeaders:
    """Adds the headers to each response that does not set them itself."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.fixed = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                      (b"referrer-policy", b"strict-origin-when-cross-origin")]
        self.policy = content_security_policy(settings).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.fixed if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self.policy))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _nonced(html: str, settings: Settings) -> HTMLResponse:
    """A page of fixed markup (no user text) whose scripts get this response's nonce."""
    nonce = secrets.token_urlsafe(18)
    return HTMLResponse(stamp_nonce(html, nonce),
                        headers={"Content-Security-Policy": content_security_policy(
                            settings, scripts=[nonce_source(nonce)])})


def install(app: FastAPI, settings: Settings) -> None:
    """The headers, and Swagger UI from this machine (the npm package, as the maps' Leaflet)
    instead of a CDN: a government intranet has none, and the policy lets no CDN script run.
    The app must be made with ``docs_url=None``."""

    @app.get(DOCS, response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        html = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=OAUTH2_REDIRECT, swagger_favicon_url="data:,").body.decode()
        # The first call may fetch the package from the npm registry: not on the event loop.
        html = await run_in_threadpool(assets.localize, html, settings, inline=False)
        return _nonced(html, settings)

    @app.get(OAUTH2_REDIRECT, response_class=HTMLResponse, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return _nonced(get_swagger_ui_oauth2_redirect_html().body.decode(), settings)

    app.add_middleware(SecurityHeaders, settings=settings)
