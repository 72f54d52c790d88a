"""CORS: off unless ALLOWED_ORIGINS lists origins; then only those origins may call the API from a
browser (with credentials), and read the rate-limit and request-id headers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from scoreboard.config import Settings

ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID"]
EXPOSED_HEADERS = ["Retry-After", "RateLimit", "RateLimit-Policy", "X-Request-ID"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the CORS middleware when origins are configured. Without it no response carries
    `Access-Control-Allow-Origin`, so browsers keep other sites' scripts from reading answers."""
    if not settings.allowed_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
