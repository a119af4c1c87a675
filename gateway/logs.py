"""structlog setup (json | console) and the redaction processor every log line passes through.

Redaction is structural, not a matter of care at each call site: keys that may hold secrets are
dropped, registered secrets are masked wherever they appear (exception text included: aiohttp
errors carry the upstream URL, whose query holds Electric's secret and bound values), and
anything shaped like a JWT, a `secret=` or a `params[n]=` query value is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

from gateway.log_sink import sink_factory

MASK: Final = "[REDACTED]"
SENSITIVE_KEYS: Final = frozenset(
    {"token", "authorization", "cookie", "secret", "password", "params", "where", "claims"}
)
_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Query values in URLs (aiohttp errors quote the upstream URL): keep the key, mask the value.
_QUERY_VALUE: Final = re.compile(
    r"([?&](?:secret|api_secret|where|subset__where|subset__params"
    r"|params(?:%5B|\[)\d{1,4}(?:%5D|\]))=)[^&\s'\"]*",
    re.IGNORECASE,
)


class Redactor:
    """structlog processor; `add_secret` registers values to mask (secrets known at start-up)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_secret(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._secrets.add(value)

    def clean(self, text: str) -> str:
        # Cheap guards first: this runs on every string of every log line (the audit line too).
        if len(text) >= 4:
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, MASK)
        if "eyJ" in text:
            text = _JWT.sub(MASK, text)
        if "=" in text:
            text = _QUERY_VALUE.sub(rf"\1{MASK}", text)
        return text

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            value = event[key]
            if key.lower() in SENSITIVE_KEYS:
                event[key] = MASK
            elif isinstance(value, str):
                event[key] = self.clean(value)
        return event


REDACTOR: Final = Redactor()


def _quiet_malformed(record: logging.LogRecord) -> bool:
    """aiohttp logs a client's malformed HTTP with a traceback at ERROR; it is the client's
    mistake, already answered with a 400: keep one warning line, no traceback."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError):
        record.msg, record.args, record.exc_info = f"malformed_request: {error.message}", (), None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _worker_stamp(worker: int) -> Any:
    def stamp(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        event["worker"] = worker
        return event

    return stamp


def _dumps(event: Any, default: Any = None) -> bytes:
    """orjson, fast; json for the rare line orjson refuses (a lone surrogate in a claim)."""
    try:
        return orjson.dumps(event, default=default)
    except TypeError:
        return json.dumps(event, default=default).encode()


def configure_logging(
    log_format: str = "json",
    level: int = logging.INFO,
    *,
    cache: bool = True,
    worker: int | None = None,
) -> None:
    """Our lines (the audit line on every request) render with orjson straight to bytes for the
    coalescing sink; the few records of aiohttp and asyncio go through stdlib logging. With
    `serve --workers`, every line names its `worker`."""
    console = log_format == "console"
    text_renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    stamp: list[Any] = [] if worker is None else [_worker_stamp(worker)]
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *stamp,
    ]
    handler = logging.StreamHandler(sys.stderr)  # aiohttp's and asyncio's own log records
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                REDACTOR,
                text_renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    handler.addFilter(_quiet_malformed)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *stamp,
            REDACTOR,
            text_renderer if console else structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=sink_factory,
        cache_logger_on_first_use=cache,
    )
