"""Where verification keys come from: an HS secret, a PEM public key, or a JWKS endpoint.

Each key carries the algorithms its type can verify (HS* for a secret, RS/PS for RSA, ES for
EC by curve, EdDSA for OKP), intersected with `JWT_ALGORITHMS`. A token's `alg` selects only keys
of the matching family, so `none` and HS/RS confusion cannot happen by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from cryptography.x509 import load_pem_x509_certificate

log = structlog.get_logger(__name__)

HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
SUPPORTED_ALGORITHMS: Final = (
    HMAC_ALGORITHMS | RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | {"EdDSA"}
)
MIN_HMAC_SECRET_BYTES: Final = 32  # RFC 7518 §3.2: a key at least as long as the hash output
JWKS_MIN_REFRESH_SECONDS: Final = 30.0
JWKS_MAX_AGE_BOUNDS: Final = (60.0, 86400.0)


class KeyConfigError(ValueError):
    """A key that cannot be used, with a message for the operator."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: Any = field(repr=False)
    algorithms: frozenset[str]
    kid: str | None = None
    # A digest of the key material itself: what a cached verification was made with. A key
    # replaced under the same kid and algorithm has another fingerprint.
    fingerprint: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.key))


def fingerprint(key: object) -> bytes:
    """SHA-256 of a secret's bytes, or of a public key's DER SubjectPublicKeyInfo."""
    if isinstance(key, bytes):
        material = key
    elif hasattr(key, "public_bytes"):
        material = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:  # not a key type we build; never equal to another key's
        material = repr(id(key)).encode()
    return hashlib.sha256(material).digest()


class KeySource(Protocol):
    """Keys that may verify a token with this `alg` and `kid`."""

    def candidates(self, alg: str, kid: str | None) -> list[VerificationKey]: ...


def _algorithms_for(public_key: object) -> frozenset[str]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = EC_ALGORITHMS.get(public_key.curve.name)
        if name is None:
            raise KeyConfigError(f"EC curve {public_key.curve.name} is not supported")
        return frozenset({name})
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    raise KeyConfigError(f"unsupported public key type {type(public_key).__name__}")


def _restrict(algorithms: frozenset[str], allowed: frozenset[str] | None) -> frozenset[str]:
    return algorithms if allowed is None else algorithms & allowed


def hmac_key(secret: str, allowed: frozenset[str] | None = None) -> VerificationKey:
    if len(secret.encode()) < MIN_HMAC_SECRET_BYTES:
        raise KeyConfigError(
            f"JWT_SECRET must be at least {MIN_HMAC_SECRET_BYTES} bytes (RFC 7518 §3.2); "
            "generate one with: openssl rand -base64 48"
        )
    default = frozenset({"HS256"}) if allowed is None else HMAC_ALGORITHMS
    return VerificationKey(key=secret.encode(), algorithms=_restrict(default, allowed))


def public_key(value: str, allowed: frozenset[str] | None = None) -> VerificationKey:
    """A PEM public key or certificate, given inline or as a file path."""
    text = value if "-----BEGIN" in value else None
    if text is None:
        try:
            text = Path(value).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise KeyConfigError(f"JWT_PUBLIC_KEY: cannot read {value!r}: {error}") from None
    data = text.encode()
    try:
        if b"CERTIFICATE" in data:
            key: object = load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except ValueError as error:
        raise KeyConfigError(
            f"JWT_PUBLIC_KEY is not a PEM public key or certificate: {error}"
        ) from None
    return VerificationKey(key=key, algorithms=_restrict(_algorithms_for(key), allowed))


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """Keys fixed at start-up (HS secret, PEM)."""

    keys: tuple[VerificationKey, ...]
    fingerprints: frozenset[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprints", frozenset(k.fingerprint for k in self.keys))

    def candidates(self, alg: str, kid: str | None) -> list[VerificationKey]:
        return [k for k in self.keys if alg in k.algorithms and (k.kid is None or k.kid == kid)]


def parse_jwks(document: object, allowed: frozenset[str] | None = None) -> list[VerificationKey]:
    """Signature keys of a JWKS document; symmetric (`oct`) and unusable keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyConfigError("JWKS document must be an object with a `keys` list")
    keys: list[VerificationKey] = []
    for entry in document["keys"]:
        if (
            not isinstance(entry, dict)
            or entry.get("kty") == "oct"
            or entry.get("use", "sig") != "sig"
        ):
            continue
        try:
            jwk = jwt.PyJWK.from_dict(entry)
            algorithms = _algorithms_for(jwk.key)
        except (jwt.PyJWKError, KeyConfigError, ValueError) as error:
            log.warning("jwks_key_skipped", kid=entry.get("kid"), reason=str(error))
            continue
        declared = entry.get("alg")
        if isinstance(declared, str):
            algorithms &= {declared}
        kid = entry.get("kid")
        keys.append(
            VerificationKey(
                key=jwk.key,
                algorithms=_restrict(algorithms, allowed),
                kid=kid if isinstance(kid, str) else None,
            )
        )
    return keys


def _max_age(cache_control: str | None) -> float:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    low, high = JWKS_MAX_AGE_BOUNDS
    return min(max(float(match.group(1)), low), high) if match else 300.0


class JwksKeys:
    """Keys from a JWKS URL: refreshed when stale, and on an unknown `kid` at most every 30 s.

    A failed fetch keeps the last good keys; callers never wait on the network except for the
    one refresh an unknown `kid` may trigger.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        allowed: frozenset[str] | None = None,
        min_refresh: float = JWKS_MIN_REFRESH_SECONDS,
    ) -> None:
        self.url = url
        self._session = session
        self._allowed = allowed
        self._min_refresh = min_refresh
        self._keys: list[VerificationKey] = []
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._max_age = 300.0
        self._lock = asyncio.Lock()
        self.generation = 0
        self.fingerprints: frozenset[bytes] = frozenset()

    def candidates(self, alg: str, kid: str | None) -> list[VerificationKey]:
        return [k for k in self._keys if alg in k.algorithms and (kid is None or k.kid == kid)]

    def next_refresh_in(self) -> float:
        """Seconds until the keys go stale (retry at the rate limit while they never loaded)."""
        if self._fetched_at == float("-inf"):
            return self._min_refresh
        age = time.monotonic() - self._fetched_at
        return max(self._max_age - age, self._min_refresh)

    async def maintain(self) -> None:
        """Refresh whenever the keys go stale; runs until cancelled."""
        while True:
            await asyncio.sleep(self.next_refresh_in())
            await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the JWKS unless one was attempted within the rate limit; True if keys changed."""
        async with self._lock:
            now = time.monotonic()
            if now - self._attempted_at < self._min_refresh and not force:
                return False
            self._attempted_at = now
            try:
                async with self._session.get(
                    self.url, timeout=aiohttp.ClientTimeout(total=5)
                ) as response:
                    response.raise_for_status()
                    document = json.loads(await response.read())
                    max_age = _max_age(response.headers.get("Cache-Control"))
                keys = parse_jwks(document, self._allowed)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyConfigError) as error:
                log.warning("jwks_refresh_failed", url=self.url, reason=str(error))
                return False
            # Compared by key material too: a key replaced under its kid and algorithm is a
            # change, and verifications made with the old one must not outlive it.
            changed = {(k.kid, k.algorithms, k.fingerprint) for k in keys} != {
                (k.kid, k.algorithms, k.fingerprint) for k in self._keys
            }
            self._keys, self._fetched_at, self._max_age = keys, now, max_age
            self.fingerprints = frozenset(k.fingerprint for k in keys)
            if changed:
                self.generation += 1
                log.info("jwks_refreshed", url=self.url, keys=len(keys))
            return changed


@dataclass(frozen=True, slots=True)
class KeyRing:
    """All configured sources; JWKS (if any) is asked last and may be refreshed."""

    static: StaticKeys
    jwks: JwksKeys | None = None

    def candidates(self, alg: str, kid: str | None) -> list[VerificationKey]:
        found = self.static.candidates(alg, kid)
        if self.jwks is not None:
            found += self.jwks.candidates(alg, kid)
        return found

    def trusts(self, key_fingerprint: bytes) -> bool:
        """Whether the key with this fingerprint is still configured (JWKS: still published)."""
        return key_fingerprint in self.static.fingerprints or (
            self.jwks is not None and key_fingerprint in self.jwks.fingerprints
        )
