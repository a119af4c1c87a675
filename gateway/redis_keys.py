"""Redis key parts built from claim values, made unambiguous.

A user id or an event id may contain `:`, the separator of our keys: joined raw, user `bob`
with event `1:x` and user `bob:1` with event `x` would share `...:bob:1:x`. Every part that
comes from a token or a client is encoded as unpadded base64url, whose alphabet has no `:`
(nor `{`/`}`, which Redis Cluster reads as a hash tag), so distinct values always give
distinct keys. Lone surrogates (valid in JSON claims) survive through `surrogatepass`.
"""

from __future__ import annotations

import base64


def key_part(value: str) -> str:
    """`value` as a key segment that cannot contain the separator."""
    raw = value.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_key(prefix: str, kind: str, *values: str) -> str:
    """`<prefix>:<kind>:<part>:<part>...` with every value encoded by `key_part`."""
    return ":".join((prefix, kind, *(key_part(v) for v in values)))
