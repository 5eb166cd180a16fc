"""Response headers: security headers on everything, CORS only for configured origins."""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask_cors import CORS

EXPOSED = ["Location", "ETag", "Content-Location", "X-Request-ID", "WWW-Authenticate"]
ALLOWED = ["Authorization", "Content-Type", "Accept", "If-Match", "If-None-Exist",
           "Prefer", "X-Request-ID"]


def init_app(app: Flask) -> None:
    origins = [o for o in app.config["CORS_ORIGINS"].split(",") if o]
    if origins:
        # Bearer tokens, not cookies: credentials are never allowed cross-origin.
        CORS(app, origins=origins, allow_headers=ALLOWED, expose_headers=EXPOSED,
             supports_credentials=False, max_age=600, vary_header=True)
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    ancestors = current_app.config["FRAME_ANCESTORS"] or "'none'"
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # Pages set their own policy; API answers load nothing and may not be framed.
    headers.setdefault("Content-Security-Policy",
                       f"default-src 'none'; frame-ancestors {ancestors}")
    if ancestors == "'none'":
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    base = current_app.config.get("BASE_URL") or ""
    if request.is_secure or base.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response
