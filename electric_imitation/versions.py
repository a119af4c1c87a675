"""Which Electric the imitation plays: what each sync-service version does differently.

One real server (sync-service 1.0.10) was run by hand beside the imitation; the 1.7 behaviour
follows Electric's 1.7.x source. Every behaviour that differs between the two is one field
here, so the code that serves a request asks `config.server.<field>` instead of comparing
version strings.

`FEATURE_SINCE` also tells the real-Electric test path (`electric_imitation/real`) which tests a
server can run: a test marked `electric_feature("sse")` skips on a server older than 1.2.0.
The versions come from Electric's release tags (the first sync-service tag whose source has the
feature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

Feature = Literal["sse", "subsets", "offset_now", "changes_only", "has_data", "snapshot_end"]
FEATURES: Final[tuple[str, ...]] = get_args(Feature)

# First sync-service release with each feature (its release tags; see the module docstring).
FEATURE_SINCE: Final[dict[str, tuple[int, int, int]]] = {
    "snapshot_end": (1, 1, 12),
    "offset_now": (1, 1, 12),
    "changes_only": (1, 1, 12),
    "sse": (1, 2, 0),  # `live_sse`; 1.0.21 only knew `experimental_live_sse`
    "subsets": (1, 4, 0),  # GET `subset__*` came in 1.1.12, `POST /v1/shape` in 1.4.0
    "has_data": (1, 4, 8),
}

VersionName = Literal["1.0.10", "1.7"]
VERSION_NAMES: Final[tuple[str, ...]] = get_args(VersionName)
_BANNER: Final = re.compile(r"ElectricSQL/(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class ServerVersion:
    """How one Electric release answers; the field docs say what was seen or read, and where."""

    name: str
    """The version in `electric-server: ElectricSQL/<name>`."""
    features: frozenset[str]
    handle_digits: int
    """Handles are `<hash>-<unix time>`: in milliseconds on 1.0.10 (seen: 13 digits), in
    microseconds on 1.7 (16 digits, `Shape.generate_id/1`)."""
    shape_methods: str
    """`access-control-allow-methods` on /v1/shape (1.0.10 has no POST)."""
    exposed_headers: str
    """`access-control-expose-headers` (1.0.10 knew five electric headers)."""
    error_cache_control: str
    """4xx/5xx other than 409: `no-cache` in 1.0.10 (seen), `no-store` since 1.2.1."""
    surrogate_no_store: bool
    """1.2.1+ adds `surrogate-control: no-store` to those errors."""
    compresses_streams: bool
    """Bandit (Electric's HTTP server) compresses chunked bodies since 1.6.1; 1.0.10 ships
    Bandit 1.5.5, so its shape logs are never compressed while its whole bodies (errors, 409s,
    a long-poll timeout) are, with `vary: accept-encoding` (seen)."""
    schema_on_errors: bool
    """1.0.10 sends `electric-schema` with every response not parsed as live, errors included:
    `null` when no shape was resolved (seen); 1.7 only with a non-live 200."""
    location_on_409: bool
    """1.0.10 puts a `location` pointing at `offset=-1` with the new handle on 409s."""
    ignores_handle_at_start: bool
    """1.7 drops `handle` when offset is -1/now; 1.0.10 answers a stale one with 409."""
    waits_out_of_bounds: bool
    """1.7 gives an offset beyond the log half a long-poll to appear; 1.0.10 refuses at once."""
    rotation_keeps_old_handle: bool
    """A shape rotated under a held long-poll: 1.0.10 answers 409 naming the request's (old)
    handle, 1.7 the new one."""
    crashes_on_not: bool
    """Before 1.0.22 every boolean NOT (`NOT a`, `NOT (a = b)`: one parse tree) crashed the
    where parser (`to_binary_operators/1` had no clause for one argument): a 500."""
    crashes_on_param_cast: bool
    """Before 1.3.0 a cast applied to a `$n` parameter lost the parameter's bookkeeping: a
    500 MatchError, or a 400 when a lower-numbered parameter was only ever cast."""
    subqueries: bool
    """`col IN (SELECT ...)` is allowed since 1.1.4; 1.0.10 refuses every subquery."""
    refuses_non_boolean_where: bool
    """Since 1.1.1 a where that is not a boolean (`WHERE t_int`) is a 400 `WHERE clause must
    return a boolean` (PR #2981); 1.0.10 takes it, and PostgreSQL fails the snapshot."""
    knows_1_7_functions: bool
    """The 1.7.12 operator and function tables: COALESCE/GREATEST/LEAST and row values (1.6.0),
    `*` on numbers and `~` (1.0.22), `like()`/`ilike()` (1.2.7), enum equality (1.2.8),
    `concat()` (1.6.3). 1.0.10 has the older, smaller tables."""
    crash_body_detail: bool
    """1.0.10's crash handler answers `{"error": "<the exception, formatted>"}`; later
    versions `{"error": "Internal server error"}`."""
    cuts_failed_snapshot: bool
    """A where that Electric's parser accepts but PostgreSQL fails on at snapshot time: 1.0.10
    sent 200 and its headers, then cut the body after ~5 s (seen); 1.7 answers 500."""

    def has(self, feature: str) -> bool:
        return feature in self.features


SERVER_VERSIONS: Final[dict[str, ServerVersion]] = {
    "1.0.10": ServerVersion(
        name="1.0.10",
        features=frozenset(),
        handle_digits=13,
        shape_methods="GET, HEAD, DELETE, OPTIONS",
        exposed_headers=(
            "electric-cursor,electric-handle,electric-offset,electric-schema,electric-up-to-date"
        ),
        error_cache_control="no-cache",
        surrogate_no_store=False,
        compresses_streams=False,
        schema_on_errors=True,
        location_on_409=True,
        ignores_handle_at_start=False,
        waits_out_of_bounds=False,
        rotation_keeps_old_handle=True,
        crashes_on_not=True,
        crashes_on_param_cast=True,
        subqueries=False,
        refuses_non_boolean_where=False,
        knows_1_7_functions=False,
        crash_body_detail=True,
        cuts_failed_snapshot=True,
    ),
    "1.7": ServerVersion(
        name="1.7.12",
        features=frozenset(FEATURES),
        handle_digits=16,
        shape_methods="GET, POST, HEAD, DELETE, OPTIONS",
        exposed_headers=(
            "electric-cursor,electric-handle,electric-has-data,electric-offset,electric-schema,"
            "electric-up-to-date,electric-internal-known-error,retry-after"
        ),
        error_cache_control="no-store",
        surrogate_no_store=True,
        compresses_streams=True,
        schema_on_errors=False,
        location_on_409=False,
        ignores_handle_at_start=True,
        waits_out_of_bounds=True,
        rotation_keeps_old_handle=False,
        crashes_on_not=False,
        crashes_on_param_cast=False,
        subqueries=True,
        refuses_non_boolean_where=True,
        knows_1_7_functions=True,
        crash_body_detail=False,
        cuts_failed_snapshot=False,
    ),
}


def server_version(name: str) -> ServerVersion:
    """The behaviour table for `name` ("1.0.10" or "1.7"); ValueError names the choices."""
    try:
        return SERVER_VERSIONS[name]
    except KeyError:
        choices = ", ".join(VERSION_NAMES)
        raise ValueError(f"unknown Electric version {name!r}; choose one of {choices}") from None


def parse_banner(value: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from an `electric-server` header, None when it is not one."""
    found = _BANNER.search(value or "")
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return (major, minor, patch)


def missing_feature(feature: str, version: tuple[int, int, int]) -> str | None:
    """Why a server of `version` cannot run a test needing `feature`, or None if it can."""
    if feature not in FEATURE_SINCE:
        raise ValueError(f"unknown Electric feature {feature!r}; known: {', '.join(FEATURES)}")
    since = FEATURE_SINCE[feature]
    if version >= since:
        return None
    have = ".".join(map(str, version))
    return f"needs Electric's {feature} (since {'.'.join(map(str, since))}); this server is {have}"
