"""The response header policy, rule by rule."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.upstream.headers import add_vary, client_headers, private_cache_control


@pytest.mark.parametrize(
    ("upstream", "client"),
    [
        ("public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746",
         "private, no-cache"),
        ("public, max-age=60, must-revalidate", "private, no-cache"),
        ("public, max-age=5, stale-while-revalidate=5", "private, no-cache"),
        ("public, max-age=59", "private, no-cache"),
        ("no-store", "private, no-cache, no-store"),
        ("no-cache", "private, no-cache"),
        (None, "private, no-cache, no-store"),
        ("PUBLIC, max-age=1", "private, no-cache"),
    ],
)  # fmt: skip
def test_cache_control_is_private_and_revalidated_every_time(
    upstream: str | None, client: str
) -> None:
    assert private_cache_control(upstream) == client
    assert private_cache_control(client) == client  # idempotent


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 502, 503])
@pytest.mark.parametrize(
    "upstream", ["no-cache", "no-store", "public, max-age=60, must-revalidate", None]
)
def test_every_error_is_never_stored_whatever_electric_sent(
    status: int, upstream: str | None
) -> None:
    # Electric 1.0.10's 400s say `no-cache` only, 1.7's `no-store`: one policy for both.
    assert private_cache_control(upstream, status) == "private, no-cache, no-store"


def test_only_electric_content_and_vary_headers_pass_through_without_the_version_banner() -> None:
    upstream = CIMultiDictProxy(
        CIMultiDict(
            [
                ("electric-handle", "1-2"),
                ("electric-offset", "0_0"),
                ("Electric-Schema", "{}"),
                ("etag", '"a"'),
                ("retry-after", "5"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("access-control-allow-origin", "*"),
                ("access-control-expose-headers", "*"),
                ("connection", "keep-alive"),
                ("transfer-encoding", "chunked"),
                ("set-cookie", "x=1"),
                ("server", "Bandit"),
                ("electric-server", "ElectricSQL/1.0.10"),
                ("vary", "accept-encoding"),
                ("cache-control", "public, max-age=60"),
            ]
        )
    )
    out = client_headers(upstream)
    assert sorted(k.lower() for k in out) == sorted(
        ["electric-handle", "electric-offset", "electric-schema", "etag", "retry-after",
         "content-type", "content-encoding", "cache-control", "vary"]
    )  # fmt: skip
    assert (
        out["cache-control"] == "public, max-age=60"
    )  # made private when the response is prepared


def test_vary_is_merged_without_duplicates() -> None:
    headers: CIMultiDict[str] = CIMultiDict({"Vary": "accept-encoding"})
    add_vary(headers, ["Authorization", "Accept-Encoding", "X-Tenant-Id"])
    assert headers["Vary"] == "accept-encoding, Authorization, X-Tenant-Id"
