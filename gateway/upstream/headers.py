"""Response header policy: what of Electric's headers a client gets, and what we add.

An allow-list, not a deny-list: `electric-*`, `etag`, `retry-after`, `content-type` and
`content-encoding` pass untouched; everything else (hop-by-hop headers, Electric's own CORS,
`set-cookie`, server banners) is dropped. Caching is made per-user: Electric marks shape
responses `public` for up to a week, but the tenant filter is injected server-side and is not
in the URL, so a shared cache keyed on the URL would serve one user's rows to another
(electric-protocol.md §3.3). `cache-control` becomes `private` and `Vary` gains the headers that
pick the identity.
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
PASS_THROUGH: Final = frozenset(
    {hdrs.ETAG.lower(), hdrs.RETRY_AFTER.lower(), hdrs.CONTENT_TYPE.lower(),
     hdrs.CONTENT_ENCODING.lower()}
)  # fmt: skip
# What a browser client must be able to read (electric-protocol.md §2.2, issue #2492: an
# explicit list, because `*` is ignored for credentialed requests).
EXPOSED: Final = (
    "electric-cursor", "electric-handle", "electric-has-data", "electric-offset",
    "electric-schema", "electric-up-to-date", "electric-internal-known-error",
    "electric-snapshot", "retry-after", "etag",
)  # fmt: skip
_SHARED_ONLY: Final = frozenset({"public", "s-maxage", "proxy-revalidate"})


def private_cache_control(value: str | None) -> str:
    """`public, max-age=60, s-maxage=3600` -> `private, max-age=60`; none -> `private, no-store`."""
    if not value:
        return "private, no-store"
    directives = [d.strip() for d in value.split(",") if d.strip()]
    kept = [d for d in directives if d.split("=", 1)[0].strip().lower() not in _SHARED_ONLY]
    if not any(d.lower() in ("private", "no-store") for d in kept):
        kept.insert(0, "private")
    return ", ".join(kept)


def add_vary(headers: CIMultiDict[str], names: Iterable[str]) -> None:
    present = [v.strip() for v in headers.get(hdrs.VARY, "").split(",") if v.strip()]
    lower = {v.lower() for v in present}
    present += [n for n in names if n.lower() not in lower]
    headers[hdrs.VARY] = ", ".join(present)


def client_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream headers a client gets; caching, Vary and CORS are settled at prepare time
    (web/middlewares.py finish_headers), for proxied and own responses alike."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower.startswith(ELECTRIC_PREFIX) or lower in PASS_THROUGH:
            out.add(name, value)
    cache_control = upstream.get(hdrs.CACHE_CONTROL)
    if cache_control is not None:
        out[hdrs.CACHE_CONTROL] = cache_control  # made private, with the rest, at prepare time
    return out
