"""Verify a JWT: size, algorithm allow-list by key type, signature, exp/iat/nbf, TTL, aud, iss.

`verify_token` is pure (it takes the keys and `now`); `TokenVerifier` adds the one JWKS refresh an
unknown `kid` may trigger. Verified tokens are kept by `gateway/decisions.py`, never past `exp`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

from gateway.auth.keys import SUPPORTED_ALGORITHMS, KeyRing, KeySource, VerificationKey
from gateway.errors import Code, Refusal

MAX_TOKEN_BYTES: Final = 8192


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    audience: str | None = None
    issuer: str | None = None
    leeway: int = 30
    max_ttl: int = 86400


class UnknownKey(Exception):  # noqa: N818 - a signal to refresh keys, not a failure
    """No configured key matches the token's `alg`/`kid` (a JWKS may need refreshing)."""

    def __init__(self, kid: str | None) -> None:
        super().__init__(kid)
        self.kid = kid


def _invalid(message: str) -> Refusal:
    return Refusal(Code.INVALID_TOKEN, message)


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if not isinstance(value, bool) and isinstance(value, int | float):
        # JSON as Python reads it admits NaN and Infinity (no comparison with NaN is true) and
        # integers too large for a float.
        number = float(value) if isinstance(value, float) or abs(value) < 2**53 else math.inf
        if math.isfinite(number):
            return number
    raise _invalid(f"token must carry {name!r} as a number of seconds since the epoch")


def check_times(claims: Mapping[str, Any], policy: TokenPolicy, now: float) -> None:
    """exp and iat required; lifetime within max_ttl; not expired, not from the future."""
    expires, issued = _number(claims, "exp"), _number(claims, "iat")
    if expires - issued > policy.max_ttl:
        raise _invalid(
            f"token lifetime (exp - iat = {int(expires - issued)} s) exceeds the "
            f"{policy.max_ttl} s this gateway accepts; issue shorter-lived tokens"
        )
    if now > expires + policy.leeway:
        raise Refusal(Code.TOKEN_EXPIRED, "token has expired; refresh it and retry")
    if issued > now + policy.leeway:
        raise _invalid("token is issued in the future; check the issuer's clock")
    if "nbf" in claims and _number(claims, "nbf") > now + policy.leeway:
        raise _invalid("token is not valid yet (nbf)")


class BadSignature(Refusal):
    """No candidate key verifies the signature (a JWKS may have replaced a key under its kid)."""

    def __init__(self) -> None:
        super().__init__(Code.INVALID_TOKEN, "token signature does not verify")


def verify_token(token: str, keys: KeySource, policy: TokenPolicy, now: float) -> dict[str, Any]:
    """The verified claims of `token`, or Refusal; UnknownKey when no key fits its alg/kid."""
    return verify_token_key(token, keys, policy, now)[0]


def verify_token_key(
    token: str, keys: KeySource, policy: TokenPolicy, now: float
) -> tuple[dict[str, Any], VerificationKey]:
    """`verify_token`, with the key that verified the signature."""
    if len(token) > MAX_TOKEN_BYTES:
        raise _invalid(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _invalid("token is not a well-formed JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise _invalid(f"token algorithm {str(alg)[:20]!r} is not accepted")
    if kid is not None and not isinstance(kid, str):
        raise _invalid("token `kid` must be a string")
    candidates = keys.candidates(alg, kid)
    if not candidates:
        raise UnknownKey(kid)
    options: dict[str, Any] = {
        "verify_signature": True,
        "verify_exp": False,  # times are checked below against `now`, with our leeway
        "verify_iat": False,
        "verify_nbf": False,
        "verify_aud": policy.audience is not None,
        "verify_iss": policy.issuer is not None,
        "require": ["exp", "iat"],
    }
    for candidate in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                candidate.key,
                algorithms=[alg],
                options=options,  # type: ignore[arg-type]
                audience=policy.audience,
                issuer=policy.issuer,
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.MissingRequiredClaimError as error:
            raise _invalid(f"token must carry {error.claim!r}") from None
        except jwt.InvalidAudienceError:
            raise _invalid("token audience (aud) is not this gateway's") from None
        except jwt.InvalidIssuerError:
            raise _invalid("token issuer (iss) is not trusted here") from None
        except jwt.PyJWTError as error:
            raise _invalid(f"token is not valid: {error}") from None
        check_times(claims, policy, now)
        return claims, candidate
    raise BadSignature


class TokenVerifier:
    """`verify_token` against the configured keys, with the one JWKS refresh an unknown `kid`
    (or a key replaced under its kid) may trigger.

    Keeps nothing: the verifications a live client repeats are kept by `gateway/decisions.py`,
    each tied to the fingerprint of the key material that made it and to the key set's
    `generation`.
    """

    def __init__(self, keys: KeyRing, policy: TokenPolicy) -> None:
        self.keys = keys
        self.policy = policy

    @property
    def generation(self) -> int:
        """Changes when the JWKS key set changes: verifications made before are not reused."""
        return self.keys.jwks.generation if self.keys.jwks else 0

    async def verify_key(self, token: str, now: float) -> tuple[dict[str, Any], VerificationKey]:
        """Verify; a kid the JWKS lacks, or a signature its key under that kid does not
        verify (the key was replaced), triggers one rate-limited refresh and a second try."""
        try:
            return verify_token_key(token, self.keys, self.policy, now)
        except (UnknownKey, BadSignature) as first:
            jwks = self.keys.jwks
            if jwks is None or not await jwks.refresh():
                if isinstance(first, BadSignature):
                    raise
                raise _invalid(f"no trusted key matches this token (kid {first.kid!r})") from None
            try:
                return verify_token_key(token, self.keys, self.policy, now)
            except UnknownKey as second:
                raise _invalid(f"no trusted key matches this token (kid {second.kid!r})") from None

    async def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The verified claims of `token` (nothing kept)."""
        return (await self.verify_key(token, time.time() if now is None else now))[0]


def token_digest(token: str) -> bytes:
    """What the decisions cache keys a token by: never the token itself."""
    return hashlib.blake2b(token.encode(), digest_size=20).digest()
