"""Structured logs with a correlation id, Prometheus metrics and health endpoints."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import TYPE_BASE, UNAVAILABLE

CORRELATION_HEADER = "X-Correlation-ID"

# Labels are the route's template ("/v1/agreements/{agreement_id}"), never the raw path, and a
# method outside this set is counted as OTHER: a caller cannot mint new series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template and status code",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, by route template and status class (2xx, 4xx, 5xx)",
    ["service", "method", "route", "status_class"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter(
    "http_request_errors_total",
    "HTTP responses with a 4xx or 5xx status, by route template, status and RFC 9457 problem type",
    ["service", "method", "route", "status", "problem"],
)
_PROBLEM_MARK = TYPE_BASE.encode()
_PROBLEM_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")
# The environment variable prometheus-client reads: several processes' metrics in one directory.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_logs
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def new_correlation_id() -> str:
    return str(uuid.uuid4())


class CorrelationMiddleware:
    """Takes the caller's correlation id (or makes one), binds it to every log line, echoes it
    back, and times the request. Plain ASGI: BaseHTTPMiddleware costs a task per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(CORRELATION_HEADER, "")
        correlation_id = incoming if 0 < len(incoming) <= 128 else new_correlation_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id, service=self.service)
        started = time.perf_counter()
        status = 0
        problem = ""

        async def send_with_id(message: Message) -> None:
            nonlocal status, problem
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[CORRELATION_HEADER] = correlation_id
            elif status >= 400 and not problem:
                problem = problem_kind(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if not status:
                # The outermost handler (services/common/problems.py) answers it, outside this middleware.
                status, problem = (503, "unavailable") if isinstance(exc, UNAVAILABLE) else (500, "internal")
            raise
        finally:
            self._count(scope, status or 500, problem, time.perf_counter() - started)

    def _count(self, scope: Scope, status: int, problem: str, seconds: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        if method not in HTTP_METHODS:
            method = "OTHER"
        # The labelled children, looked up once per (method, route, status): labels() validates,
        # formats and locks on every call.
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                LATENCY.labels(self.service, method, template, f"{status // 100}xx"),
                REQUESTS.labels(self.service, method, template, str(status)),
            )
        children[0].observe(seconds)
        children[1].inc()
        if status >= 400:
            ERRORS.labels(self.service, method, template, str(status), problem or "none").inc()


def problem_kind(body: bytes) -> str:
    """The last segment of an RFC 9457 problem's type ("rule-violated") in a response body, or ""."""
    start = body.find(_PROBLEM_MARK)
    if start < 0:
        return ""
    start += len(_PROBLEM_MARK)
    end = body.find(b'"', start, start + 65)
    kind = body[start:end] if end > start else b""
    return kind.decode() if kind and _PROBLEM_CHARS.issuperset(kind) else "other"


def install(app: FastAPI, service: str, ready: Callable[[], Awaitable[bool]]) -> None:
    app.add_middleware(CorrelationMiddleware, service=service)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if await ready():
            return Response('{"status":"ready"}', media_type="application/json")
        return Response('{"status":"not ready"}', status_code=503, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def exposition() -> bytes:
    """This process's metrics, or, under several worker processes, all of theirs added up."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def share_metrics_between_processes() -> str:
    """Before starting worker processes that share one socket: each writes its metrics to files
    in one directory, and /metrics in any of them answers for all (prometheus-client's
    multiprocess mode). Must run before the workers import prometheus_client."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        # Files from an earlier run would be added to this one's.
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="coordreg-metrics-")
        atexit.register(shutil.rmtree, directory, True)
        os.environ[MULTIPROC_DIR] = directory
    return directory


def serve_metrics(host: str, port: int, process: str) -> None:
    """/metrics over HTTP on its own port, for a process that serves no API (relay, worker); 0: none."""
    if port <= 0:
        return
    log = structlog.get_logger(__name__)
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        # The process's work goes on (a port taken on a developer's machine, say, by a second
        # relay); the target-down alert tells whoever scrapes it.
        log.error("metrics not served", process=process, host=host, port=port, error=repr(exc))
        return
    log.info("metrics served", process=process, host=host, port=port)
