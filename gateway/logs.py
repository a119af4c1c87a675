"""structlog setup (json | console) and the redaction processor every log line passes through.

Redaction is structural, not a matter of care at each call site: keys that may hold secrets are
dropped, registered secrets are masked wherever they appear (exception text included: aiohttp
errors carry the upstream URL, whose query holds Electric's secret and bound values), and
anything shaped like a JWT, a `secret=` or a `params[n]=` query value, or the value of a
`Cookie`/`Authorization` header written out in any form (`Cookie: v`, `'Authorization': 'v'`,
`cookie=v`), is masked. aiohttp's own error lines about malformed requests quote the raw bytes
of the offending header; they keep what was wrong and the header's name, never its bytes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
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
# A credential header's value in any text: an exception message, a header mapping's repr, the
# bytes a malformed request sent. Quoted values end at their quote, others at the line's end.
_CREDENTIAL_HEADER: Final = re.compile(
    r"""\b((?:proxy-)?authorization|(?:set-)?cookie)(['"]?\s*[:=]\s*)"""
    r"""(?:'[^'\r\n]*'|"[^"\r\n]*"|[^'"\r\n]+)""",
    re.IGNORECASE,
)
# The bytes aiohttp's parser quotes (`b'Cookie: sg=...'`), and the header name they start with.
_RAW_BYTES: Final = re.compile(r"""\sb['"]""")
_HEADER_NAME: Final = re.compile(r"""\sb['"]([A-Za-z0-9-]{1,64}):""")


class Redactor:
    """structlog processor; `add_secret` registers values to mask (secrets known at start-up)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._sensitive: dict[str, bool] = {}  # key -> whether it is masked, by its lower case

    def add_secret(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._secrets.add(value)

    def clean(self, text: str) -> str:
        # Cheap guards first: this runs on every string of every log line (the audit line too).
        if len(text) < 4:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "eyJ" in text:
            text = _JWT.sub(MASK, text)
        if "=" in text:
            text = _QUERY_VALUE.sub(rf"\1{MASK}", text)
        if ":" in text or "=" in text:
            text = _CREDENTIAL_HEADER.sub(rf"\1\2{MASK}", text)
        return text

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        sensitive = self._sensitive
        for key, value in list(event.items()):
            masked = sensitive.get(key)
            if masked is None:
                masked = sensitive[key] = key.lower() in SENSITIVE_KEYS
            if masked:
                event[key] = MASK
            elif value.__class__ is str:
                event[key] = self.clean(value)
        return event


REDACTOR: Final = Redactor()


def describe_malformed(message: str) -> str:
    """What aiohttp's parser found wrong, without the bytes it quotes (`Invalid header value
    char:\\n\\n  b'Cookie: sg=...'`): those are whatever the client sent, credentials included.
    The header's name is kept when the bytes start with one."""
    what = _RAW_BYTES.split(message.split("\n", 1)[0], 1)[0].rstrip(":. ")
    name = _HEADER_NAME.search(message)
    return f"{what} (header {name.group(1)})" if name else what


def _quiet_malformed(record: logging.LogRecord) -> bool:
    """aiohttp logs a client's malformed HTTP with a traceback at ERROR; it is the client's
    mistake, already answered with a 400: keep one warning line, no traceback, no raw bytes."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError):
        described = describe_malformed(str(error.message))
        record.msg, record.args, record.exc_info = f"malformed_request: {described}", (), None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


class _Stamp:
    """`timestamp` in ISO 8601, UTC, to the microsecond, like structlog's TimeStamper(fmt="iso",
    utc=True), at a fifth of its cost: the date and time are formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


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
                structlog.processors.format_exc_info,  # a traceback as text, for the redactor
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
            _Stamp(),
            structlog.processors.format_exc_info,
            *stamp,
            REDACTOR,
            text_renderer if console else structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=sink_factory,
        cache_logger_on_first_use=cache,
    )
