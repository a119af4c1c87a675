"""Key sources: PEM and secrets by key type, and a JWKS endpoint served by a real server."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth.keys import (
    JwksKeys,
    KeyConfigError,
    KeyRing,
    StaticKeys,
    hmac_key,
    parse_jwks,
    public_key,
)
from gateway.auth.tokens import TokenPolicy, TokenVerifier
from gateway.decisions import Decisions
from gateway.errors import Refusal
from tests.factories import make_claims


def _jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def test_short_hmac_secret_is_refused_with_advice() -> None:
    with pytest.raises(KeyConfigError, match="at least 32 bytes"):
        hmac_key("short")


def test_hmac_key_defaults_to_hs256_and_follows_the_allow_list() -> None:
    assert hmac_key("k" * 32).algorithms == {"HS256"}
    assert hmac_key("k" * 32, frozenset({"HS512", "RS256"})).algorithms == {"HS512"}


def test_public_key_algorithms_follow_the_key_type(tmp_path: Any) -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ec_pem = ec.generate_private_key(ec.SECP384R1()).public_key()
    path = tmp_path / "key.pem"
    path.write_bytes(
        rsa_pem.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert "RS256" in public_key(str(path)).algorithms
    assert "HS256" not in public_key(str(path)).algorithms
    ec_text = ec_pem.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    assert public_key(ec_text).algorithms == {"ES384"}


def test_unreadable_or_garbage_pem_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(KeyConfigError, match="cannot read"):
        public_key(str(tmp_path / "missing.pem"))
    with pytest.raises(KeyConfigError, match="not a PEM"):
        public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_jwks_symmetric_keys_are_never_used() -> None:
    keys = parse_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})
    assert keys == []


class JwksServer:
    """A real JWKS endpoint whose document and status the test changes."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.fetches = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(
            self.document, status=self.status, headers={"Cache-Control": "max-age=600"}
        )


async def test_jwks_unknown_kid_refreshes_once_then_is_rate_limited() -> None:
    server_state = JwksServer()
    app = web.Application()
    app.router.add_get("/jwks", server_state.handle)
    private_a = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_b = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_state.document = {"keys": [_jwk(private_a, "a")]}
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        jwks = JwksKeys(str(server.make_url("/jwks")), session)
        verifier = TokenVerifier(KeyRing(StaticKeys(()), jwks), TokenPolicy())
        token_a = jwt.encode(make_claims(), private_a, algorithm="RS256", headers={"kid": "a"})
        assert (await verifier.verify(token_a))["sub"] == "alice"
        assert server_state.fetches == 1

        # Key b appears upstream, but a refresh ran less than 30 s ago: refused, no fetch.
        server_state.document = {"keys": [_jwk(private_a, "a"), _jwk(private_b, "b")]}
        token_b = jwt.encode(make_claims(), private_b, algorithm="RS256", headers={"kid": "b"})
        with pytest.raises(Refusal, match="no trusted key"):
            await verifier.verify(token_b)
        assert server_state.fetches == 1

        jwks._attempted_at = time.monotonic() - 31  # the rate-limit window has passed
        assert (await verifier.verify(token_b))["sub"] == "alice"
        assert server_state.fetches == 2


async def test_jwks_fetch_failure_keeps_the_last_good_keys() -> None:
    server_state = JwksServer()
    app = web.Application()
    app.router.add_get("/jwks", server_state.handle)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_state.document = {"keys": [_jwk(private, "a")]}
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        jwks = JwksKeys(str(server.make_url("/jwks")), session, min_refresh=0)
        assert await jwks.refresh()
        server_state.status = 500
        assert not await jwks.refresh()
        assert server_state.fetches == 2
        assert [k.kid for k in jwks.candidates("RS256", "a")] == ["a"]


async def test_a_key_replaced_under_the_same_kid_ends_cached_verifications_made_with_it() -> None:
    """The JWKS publishes a new RSA key under kid `k1`, RS256 both: a token signed with the old
    key was verified and cached; once the set is refreshed it no longer verifies, and a token
    signed with the new key does (its signature failing the old key triggers the refresh)."""
    server_state = JwksServer()
    app = web.Application()
    app.router.add_get("/jwks", server_state.handle)
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_state.document = {"keys": [_jwk(old, "k1")]}
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        jwks = JwksKeys(str(server.make_url("/jwks")), session, min_refresh=0)
        assert await jwks.refresh(force=True)
        decisions = Decisions(TokenVerifier(KeyRing(StaticKeys(()), jwks), TokenPolicy()))
        signed_old = jwt.encode(make_claims(), old, algorithm="RS256", headers={"kid": "k1"})
        signed_new = jwt.encode(make_claims(), new, algorithm="RS256", headers={"kid": "k1"})
        assert (await decisions.claims(signed_old))[1]["sub"] == "alice"  # verified, and cached

        server_state.document = {"keys": [_jwk(new, "k1")]}  # same kid, same algorithm
        assert (await decisions.claims(signed_new))[1]["sub"] == "alice"  # refreshed on failure
        assert server_state.fetches == 2
        with pytest.raises(Refusal, match="signature does not verify"):
            await decisions.claims(signed_old)

        assert await jwks.refresh(force=True) is False  # nothing changed since
        with pytest.raises(Refusal, match="signature does not verify"):
            await decisions.claims(signed_old)


async def test_a_periodic_refresh_that_replaces_a_key_under_its_kid_counts_as_a_change() -> None:
    server_state = JwksServer()
    app = web.Application()
    app.router.add_get("/jwks", server_state.handle)
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_state.document = {"keys": [_jwk(old, "k1")]}
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        jwks = JwksKeys(str(server.make_url("/jwks")), session, min_refresh=0)
        await jwks.refresh(force=True)
        decisions = Decisions(TokenVerifier(KeyRing(StaticKeys(()), jwks), TokenPolicy()))
        signed_old = jwt.encode(make_claims(), old, algorithm="RS256", headers={"kid": "k1"})
        await decisions.claims(signed_old)
        server_state.document = {"keys": [_jwk(new, "k1")]}
        await jwks.refresh(force=True)  # what jwks.maintain() runs when the set is stale
        with pytest.raises(Refusal, match="signature does not verify"):
            await decisions.claims(signed_old)
        assert jwks.generation == 2  # the replacement counted as a change
