"""Token verification, attack by attack: every refusal is a test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.keys import KeyRing, StaticKeys, hmac_key, public_key
from gateway.auth.tokens import TokenPolicy, TokenVerifier, UnknownKey, verify_token
from gateway.errors import Code, Refusal
from tests.factories import SECRET, make_claims, make_token

NOW = time.time()
HS_KEYS = StaticKeys((hmac_key(SECRET),))
POLICY = TokenPolicy()
RSA_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = (
    RSA_PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
RSA_KEYS = StaticKeys((public_key(RSA_PEM),))


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's own now: tokens are made at call time, and the suite may reach this module
    minutes after collection, past the leeway of a NOW fixed at import."""
    global NOW  # noqa: PLW0603 (read by every test of this module)
    NOW = time.time()


def refused(token: str, keys: StaticKeys = HS_KEYS, policy: TokenPolicy = POLICY) -> Refusal:
    with pytest.raises(Refusal) as caught:
        verify_token(token, keys, policy, NOW)
    return caught.value


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_hs256_token_yields_its_claims() -> None:
    claims = verify_token(make_token(), HS_KEYS, POLICY, NOW)
    assert claims["sub"] == "alice"


def test_alg_none_is_refused() -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(make_claims())}."
    assert refused(token).code is Code.INVALID_TOKEN


async def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    """The classic key-confusion attack: an RSA-configured gateway never runs HMAC."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(make_claims())
    signature = hmac.new(RSA_PEM.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(UnknownKey):
        verify_token(token, RSA_KEYS, POLICY, NOW)
    with pytest.raises(Refusal) as caught:
        await TokenVerifier(KeyRing(RSA_KEYS), POLICY).verify(token, NOW)
    assert caught.value.code is Code.INVALID_TOKEN


def test_rs256_token_verifies_against_the_pem_key() -> None:
    token = make_token(RSA_PRIVATE, "RS256")
    assert verify_token(token, RSA_KEYS, POLICY, NOW)["sub"] == "alice"


def test_es256_and_eddsa_tokens_verify_with_their_key_types() -> None:
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ed_private = ed25519.Ed25519PrivateKey.generate()
    for private, alg in ((ec_private, "ES256"), (ed_private, "EdDSA")):
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys = StaticKeys((public_key(pem.decode()),))
        assert verify_token(make_token(private, alg), keys, POLICY, NOW)["sub"] == "alice"


def test_token_signed_with_another_secret_is_refused() -> None:
    token = make_token("another-secret-that-is-long-enough-000")
    assert refused(token).code is Code.INVALID_TOKEN


def test_tampered_payload_is_refused() -> None:
    header, _, signature = make_token().split(".")
    token = f"{header}.{_b64(make_claims(role='admin'))}.{signature}"
    assert refused(token).code is Code.INVALID_TOKEN


def test_expired_token_is_refused_as_token_expired() -> None:
    token = make_token(iat=int(NOW) - 300, exp=int(NOW) - 100)
    assert refused(token).code is Code.TOKEN_EXPIRED


def test_expiry_within_leeway_is_accepted() -> None:
    token = make_token(iat=int(NOW) - 300, exp=int(NOW) - 10)
    assert verify_token(token, HS_KEYS, POLICY, NOW)["sub"] == "alice"


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_token_without_iat_or_exp_is_refused(claim: str) -> None:
    token = make_token(iat=None) if claim == "iat" else make_token(exp=None)
    refusal = refused(token)
    assert refusal.code is Code.INVALID_TOKEN
    assert claim in refusal.message


def test_lifetime_beyond_max_ttl_is_refused() -> None:
    token = make_token(iat=int(NOW), exp=int(NOW) + 86401)
    assert "exceeds" in refused(token).message


def test_token_from_the_future_is_refused() -> None:
    assert refused(make_token(iat=int(NOW) + 600, exp=int(NOW) + 900)).code is Code.INVALID_TOKEN


def test_not_yet_valid_token_is_refused() -> None:
    assert "nbf" in refused(make_token(nbf=int(NOW) + 600)).message


def test_wrong_audience_or_issuer_is_refused_when_configured() -> None:
    policy = TokenPolicy(audience="shape-gateway", issuer="https://id.example")
    ok = make_token(aud="shape-gateway", iss="https://id.example")
    assert verify_token(ok, HS_KEYS, policy, NOW)["aud"] == "shape-gateway"
    assert (
        "audience"
        in refused(make_token(aud="other", iss="https://id.example"), policy=policy).message
    )
    assert (
        "issuer"
        in refused(make_token(aud="shape-gateway", iss="https://evil"), policy=policy).message
    )
    assert refused(make_token(iss="https://id.example"), policy=policy).code is Code.INVALID_TOKEN


def test_oversized_token_is_refused_before_parsing() -> None:
    assert "longer than" in refused("x" * 9000).message


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "....", "eyJ.eyJ.x"])
def test_garbage_is_refused_as_invalid_token(token: str) -> None:
    assert refused(token).code is Code.INVALID_TOKEN


def test_numeric_claims_must_be_numbers() -> None:
    assert refused(make_token(exp="tomorrow")).code is Code.INVALID_TOKEN


def test_unknown_kid_signals_a_key_refresh() -> None:
    keyed = StaticKeys((public_key(RSA_PEM),))
    token = jwt.encode(make_claims(), RSA_PRIVATE, algorithm="RS384", headers={"kid": "k9"})
    assert verify_token(token, keyed, POLICY, NOW)["sub"] == "alice"  # unkeyed PEM matches any kid
    with pytest.raises(UnknownKey):
        verify_token(make_token(), StaticKeys(()), POLICY, NOW)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_a_signed_time_that_is_not_a_finite_number_is_invalid_token(
    claim: str, value: float
) -> None:
    """Python's JSON reads NaN and Infinity: `exp: NaN` passed every comparison and then
    failed as a 500 when the identity took its integer part."""
    token = jwt.encode(make_claims(**{claim: value}), SECRET, algorithm="HS256")
    assert refused(token).code is Code.INVALID_TOKEN
