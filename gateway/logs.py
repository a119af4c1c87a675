"""structlog setup (json | console) and the redaction processor every log line passes through.

Redaction is structural, not a matter of care at each call site: keys that may hold secrets are
dropped, registered secrets are masked wherever they appear (exception text included: aiohttp
errors carry the upstream URL, whose query holds Electric's secret and bound values), and
anything shaped like a JWT, a `secret=` or a `params[n]=` query value is masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

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
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _JWT.sub(MASK, text)
        return _QUERY_VALUE.sub(rf"\1{MASK}", text)

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


def configure_logging(
    log_format: str = "json", level: int = logging.INFO, *, cache: bool = True
) -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache,
    )
