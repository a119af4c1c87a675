"""Settings from the environment (flags override), read once into a frozen value.

Every problem is collected and reported together, each naming the variable, what was wrong and
what is accepted, so an operator fixes the deployment in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from gateway.auth.keys import MIN_HMAC_SECRET_BYTES as MIN_SECRET_BYTES
from gateway.auth.keys import SUPPORTED_ALGORITHMS
from gateway.redis.url import RedisUrlError, parse_redis_url

_URL: Final = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
_ORIGIN: Final = re.compile(r"\*|https?://[^\s/?#]+")
_PREFIX: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class SettingsError(Exception):
    """`problems`, one line each; `partial`: the settings with every value that was read, so a
    command can go on to find the rules' and keys' problems in the same run."""

    def __init__(self, problems: list[str], partial: Settings | None = None) -> None:
        self.problems = tuple(problems)
        self.partial = partial
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Settings:
    electric_url: str = "http://localhost:3000"
    electric_secret: str | None = field(default=None, repr=False)
    rules_path: str = "shape_rules.yaml"
    host: str = "0.0.0.0"  # noqa: S104 - a sidecar listens on the pod's interfaces
    port: int = 8080
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = field(default=None, repr=False)
    jwt_jwks_url: str | None = None
    jwt_algorithms: frozenset[str] | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: int = 30
    jwt_max_ttl: int = 86400
    auth_cookie: str | None = None
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_prefix: str = "shape-gateway"  # keys: <prefix>:{revocations}, <prefix>:{audit}, ...
    admin_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    fail_mode: str = "closed"
    log_format: str = "json"
    metrics_tenant_labels: bool = False
    live_lease_seconds: int = 15  # how long a dead replica's live-connection slots linger
    header_timeout: int = 10  # seconds to deliver a request's headers; also the idle keep-alive
    write_timeout: int = 60  # seconds a response may make no write progress (client not reading)
    max_connections: int | None = None  # open client connections; None: from the file limit
    redis_pool_size: int = 4  # connections of each of the limits and audit Redis clients
    revocation_wait_ms: int = 1000  # how long a publish waits for a Redis replica to confirm
    gc_seconds: int = 300  # full garbage collections this often (0: CPython's own rule)
    workers: int = 1  # processes sharing the port (SO_REUSEPORT), each a full replica
    upstream_probe_seconds: int = 10  # GET /v1/health of each upstream this often (0: never)
    check_database: str | None = field(default=None, repr=False)  # rules vs schema at start
    audit_bytes_per_minute: int = 1024 * 1024  # client audit events a user may store, a minute
    local_key_secret: str | None = field(default=None, repr=False)  # enables /v1/local-key
    local_key_epoch: int = 1  # part of every local key: raising it replaces them all
    local_key_lease: int = 86400  # seconds a client may keep its local key offline
    collapse: bool = True  # identical rewritten upstream requests share one exchange

    @property
    def has_key_source(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_key or self.jwt_jwks_url)


_DEFAULTS: Final = Settings()
_TEXT: Final = {
    "electric_url": "ELECTRIC_URL",
    "electric_secret": "ELECTRIC_SECRET",
    "rules_path": "GATEWAY_RULES",
    "host": "GATEWAY_HOST",
    "jwt_secret": "JWT_SECRET",
    "jwt_public_key": "JWT_PUBLIC_KEY",
    "jwt_jwks_url": "JWT_JWKS_URL",
    "jwt_audience": "JWT_AUDIENCE",
    "jwt_issuer": "JWT_ISSUER",
    "auth_cookie": "GATEWAY_AUTH_COOKIE",
    "redis_url": "REDIS_URL",
    "redis_prefix": "GATEWAY_REDIS_PREFIX",
    "admin_token": "GATEWAY_ADMIN_TOKEN",
    "fail_mode": "GATEWAY_FAIL_MODE",
    "log_format": "LOG_FORMAT",
    "check_database": "GATEWAY_CHECK_DATABASE",
    "local_key_secret": "GATEWAY_LOCAL_KEY_SECRET",
}
_INTEGERS: Final = {  # field: (variable, lowest, highest)
    "port": ("GATEWAY_PORT", 0, 65535),
    "jwt_leeway": ("JWT_LEEWAY", 0, 600),
    "jwt_max_ttl": ("JWT_MAX_TTL", 1, 30 * 86400),
    "live_lease_seconds": ("GATEWAY_LIVE_LEASE_SECONDS", 3, 300),
    "header_timeout": ("GATEWAY_HEADER_TIMEOUT", 1, 300),
    "write_timeout": ("GATEWAY_WRITE_TIMEOUT", 1, 3600),
    "max_connections": ("GATEWAY_MAX_CONNECTIONS", 16, 1_000_000),
    "redis_pool_size": ("GATEWAY_REDIS_POOL_SIZE", 1, 256),
    "revocation_wait_ms": ("GATEWAY_REVOCATION_WAIT_MS", 0, 10_000),
    "gc_seconds": ("GATEWAY_GC_SECONDS", 0, 86_400),
    "workers": ("GATEWAY_WORKERS", 1, 64),
    "upstream_probe_seconds": ("GATEWAY_UPSTREAM_PROBE_SECONDS", 0, 3600),
    # At least one full batch (client_events.MAX_BATCH_BYTES), or some would never be stored.
    "audit_bytes_per_minute": ("GATEWAY_AUDIT_BYTES_PER_MINUTE", 512 * 1024, 1024**3),
    "local_key_epoch": ("GATEWAY_LOCAL_KEY_EPOCH", 1, 1_000_000),
    "local_key_lease": ("GATEWAY_LOCAL_KEY_LEASE", 60, 30 * 86400),
}
_CHOICES: Final = {"fail_mode": ("closed", "open"), "log_format": ("json", "console")}


def _algorithms(raw: str, problems: list[str]) -> frozenset[str] | None:
    names = frozenset(a.strip() for a in raw.split(",") if a.strip())
    unknown = sorted(names - SUPPORTED_ALGORITHMS)
    if unknown:
        problems.append(
            f"JWT_ALGORITHMS: {', '.join(unknown)} not accepted ('none' never is); "
            f"choose from {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
        )
    return (names & SUPPORTED_ALGORITHMS) or None


def _origins(raw: str, problems: list[str]) -> tuple[str, ...]:
    listed = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    bad = [o for o in listed if not _ORIGIN.fullmatch(o)]
    if bad:
        problems.append(
            f"GATEWAY_CORS_ORIGINS: {', '.join(bad)} are not origins like "
            "https://app.example.com (or *)"
        )
    return listed


def _collapse(raw: str, problems: list[str]) -> bool:
    word = raw.strip().lower()
    if word not in ("on", "off"):
        problems.append(
            f"GATEWAY_COLLAPSE={raw!r}: must be on (identical upstream requests in flight share "
            "one) or off (one upstream request per client)"
        )
    return word != "off"


def _credential_problems(values: Mapping[str, object]) -> list[str]:
    """A cookie credential offered to any origin; an admin token short enough to guess."""
    problems = []
    origins = values.get("cors_origins", ())
    if isinstance(origins, tuple) and "*" in origins and values.get("auth_cookie"):
        problems.append(
            "GATEWAY_CORS_ORIGINS=* with GATEWAY_AUTH_COOKIE: any site could read shapes and post "
            "audit events with the user's cookie; list the origins that may, or drop the cookie"
        )
    admin_token = values.get("admin_token")
    if isinstance(admin_token, str) and len(admin_token.encode()) < MIN_SECRET_BYTES:
        problems.append(  # the token itself is not repeated
            f"GATEWAY_ADMIN_TOKEN must be at least {MIN_SECRET_BYTES} bytes (it is "
            f"{len(admin_token.encode())}); generate one with: openssl rand -base64 48"
        )
    return problems


def load_settings(env: Mapping[str, str], **overrides: object) -> Settings:
    """Read Settings from `env`; keyword overrides (from flags) win when not None."""
    problems: list[str] = []
    values: dict[str, object] = {name: env[var] for name, var in _TEXT.items() if env.get(var)}
    for name, (var, low, high) in _INTEGERS.items():
        raw = env.get(var)
        if raw:
            if raw.strip().isdigit() and low <= int(raw) <= high:
                values[name] = int(raw)
            else:
                problems.append(f"{var}={raw!r}: must be a whole number from {low} to {high}")
    if env.get("JWT_ALGORITHMS"):
        values["jwt_algorithms"] = _algorithms(env["JWT_ALGORITHMS"], problems)
    labels = env.get("GATEWAY_METRICS_TENANT_LABELS")
    if labels:
        if labels.lower() not in ("true", "false", "1", "0"):
            problems.append(f"GATEWAY_METRICS_TENANT_LABELS={labels!r}: must be true or false")
        values["metrics_tenant_labels"] = labels.lower() in ("true", "1")
    if env.get("GATEWAY_COLLAPSE"):
        values["collapse"] = _collapse(env["GATEWAY_COLLAPSE"], problems)
    if env.get("GATEWAY_CORS_ORIGINS"):
        values["cors_origins"] = _origins(env["GATEWAY_CORS_ORIGINS"], problems)
    values.update({k: v for k, v in overrides.items() if v is not None})

    for name in ("electric_url", "jwt_jwks_url"):
        url = values.get(name)
        if isinstance(url, str) and not _URL.fullmatch(url):
            problems.append(f"{_TEXT[name]}={url!r}: must be an http(s) URL")
    for name, choices in _CHOICES.items():
        if name in values and values[name] not in choices:
            problems.append(f"{_TEXT[name]}={values[name]!r}: must be {' or '.join(choices)}")
    redis_url = values.get("redis_url")
    if isinstance(redis_url, str):
        try:
            parse_redis_url(redis_url)
        except RedisUrlError as error:  # the URL itself is not repeated: it may hold a password
            problems.append(f"REDIS_URL: {error}")
    prefix = values.get("redis_prefix")
    if isinstance(prefix, str) and not _PREFIX.fullmatch(prefix):
        problems.append(
            f"GATEWAY_REDIS_PREFIX={prefix!r}: use letters, digits and - _ . : (no braces, which "
            "Redis Cluster reads as a hash tag, and no spaces)"
        )
    problems += _credential_problems(values)
    local_key_secret = values.get("local_key_secret")
    if isinstance(local_key_secret, str) and len(local_key_secret.encode()) < MIN_SECRET_BYTES:
        problems.append(
            f"GATEWAY_LOCAL_KEY_SECRET must be at least {MIN_SECRET_BYTES} bytes (every local "
            "key is derived from it); generate one with: openssl rand -base64 48"
        )
    workers = values.get("workers", 1)
    if isinstance(workers, int) and workers > 1:
        if not values.get("redis_url"):
            problems.append(
                f"GATEWAY_WORKERS={workers}: several workers need REDIS_URL; each worker is a "
                "full replica, and replicas share revocations, limits and audit de-duplication "
                "only through Redis (without it each would enforce its own view)"
            )
        if values.get("port", _DEFAULTS.port) == 0:
            problems.append(
                f"GATEWAY_WORKERS={workers}: workers share one port (SO_REUSEPORT); "
                "give a fixed GATEWAY_PORT instead of 0"
            )
    if isinstance(values.get("electric_url"), str):
        values["electric_url"] = str(values["electric_url"]).rstrip("/")
    settings = replace(_DEFAULTS, **values)  # type: ignore[arg-type]
    if problems:
        raise SettingsError(problems, settings)
    return settings
