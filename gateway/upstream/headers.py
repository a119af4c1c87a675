"""Response header policy: what of Electric's headers a client gets, and what we add.

An allow-list, not a deny-list: `electric-*` (but its `electric-server` version banner),
`etag`, `retry-after`, `content-type`, `content-encoding` and `vary` pass untouched; everything
else (hop-by-hop headers, Electric's own CORS, `set-cookie`, server banners) is dropped.

Caching: Electric marks shape responses `public` for up to a week, but the tenant filter is
injected server-side and is not in the URL, so a shared cache keyed on the URL would serve one
user's rows to another. And even a browser's private cache must not answer for the gateway: a
cached snapshot would reappear after its reader's access was revoked. So every response is
`private, no-cache` (stored, but reused only after the gateway re-authorises it: a cheap 304
through Electric's etag), never with `max-age`/`stale-*`. Every error (status 400 and above,
the gateway's own and Electric's alike, 409 included) and every response that had no policy is
also `no-store`, whatever Electric sent: Electric 1.0.10 marks its 400s `no-cache` only, 1.7
`no-store`, and an error is never worth keeping. `Vary` keeps what Electric varies on
(`accept-encoding` with a compressed body) and gains the headers that pick the identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy

ELECTRIC_PREFIX: Final = "electric-"
ELECTRIC_HANDLE: Final = "electric-handle"
ELECTRIC_OFFSET: Final = "electric-offset"
ELECTRIC_SCHEMA: Final = "electric-schema"
ELECTRIC_CURSOR: Final = "electric-cursor"
ELECTRIC_UP_TO_DATE: Final = "electric-up-to-date"
ELECTRIC_SERVER: Final = "electric-server"  # a version banner: tells an attacker what to try
# Ours: the rule's `local_ttl` in seconds, on every proxied answer of that shape, for clients
# that keep rows locally (they drop the rows they have kept longer).
LOCAL_TTL: Final = "Shape-Gateway-Local-TTL"
PASS_THROUGH: Final = frozenset(
    {hdrs.ETAG.lower(), hdrs.RETRY_AFTER.lower(), hdrs.CONTENT_TYPE.lower(),
     hdrs.CONTENT_ENCODING.lower(), hdrs.VARY.lower()}
)  # fmt: skip
# What a browser client must be able to read (the headers @electric-sql/client reads; Electric's
# own CORS plug exposes them by name, electric issue #2492: an explicit list, because `*` is
# ignored for credentialed requests).
EXPOSED: Final = (
    "electric-cursor", "electric-handle", "electric-has-data", "electric-offset",
    "electric-schema", "electric-up-to-date", "electric-internal-known-error",
    "electric-snapshot", "retry-after", "etag", "www-authenticate", "x-request-id",
    "shape-gateway-local-ttl",
)  # fmt: skip
REVALIDATE: Final = "private, no-cache"
NEVER_STORE: Final = "private, no-cache, no-store"


def private_cache_control(value: str | None, status: int = 200) -> str:
    """Any upstream policy -> `private, no-cache`; an error (status >= 400), `no-store` or no
    policy at all -> also `no-store`."""
    if not value or status >= 400:
        return NEVER_STORE
    directives = {d.split("=", 1)[0].strip().lower() for d in value.split(",")}
    return NEVER_STORE if "no-store" in directives else REVALIDATE


def add_vary(headers: CIMultiDict[str], names: Iterable[str]) -> None:
    present = [v.strip() for v in headers.get(hdrs.VARY, "").split(",") if v.strip()]
    lower = {v.lower() for v in present}
    present += [n for n in names if n.lower() not in lower]
    headers[hdrs.VARY] = ", ".join(present)


_VERDICTS: dict[str, bool] = {}  # header name as Electric spells it -> whether it passes


def _passes(name: str) -> bool:
    verdict = _VERDICTS.get(name)
    if verdict is None:
        lower = name.lower()
        verdict = (lower.startswith(ELECTRIC_PREFIX) and lower != ELECTRIC_SERVER) or (
            lower in PASS_THROUGH or lower == "cache-control"  # made private at prepare time
        )
        if len(_VERDICTS) < 1024:  # names come from Electric: a handful, bounded anyway
            _VERDICTS[name] = verdict
    return verdict


def client_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream headers a client gets; caching, Vary and CORS are settled at prepare time
    (web/middleware/response_headers.py), for proxied and own responses alike."""
    return CIMultiDict([(name, value) for name, value in upstream.items() if _passes(name)])
