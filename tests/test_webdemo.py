"""The demo web app's server keeps the app's own rules: who may write what, who gets a token
after a revocation, and a session cookie the page's script cannot read."""

from __future__ import annotations

import time

import pytest
from aiohttp import web

from deploy.webdemo.directory import Directory, NotAllowedError
from deploy.webdemo.sessions import COOKIE, Sessions, UnauthenticatedError, set_cookie
from deploy.webdemo.writes import check_task


def test_a_member_assigns_tasks_to_herself_only() -> None:
    alice = Directory().person("alice")
    assert check_task(alice, {"title": "Oil", "assigned_to": "alice"}).assigned_to == "alice"
    with pytest.raises(NotAllowedError, match="themselves"):
        check_task(alice, {"title": "Oil", "assigned_to": "carol"})


def test_an_admin_assigns_within_her_tenant_only() -> None:
    carol = Directory().person("carol")
    assert check_task(carol, {"title": "Oil", "assigned_to": "alice"}).assigned_to == "alice"
    with pytest.raises(NotAllowedError, match="not in acme"):
        check_task(carol, {"title": "Oil", "assigned_to": "bob"})
    with pytest.raises(NotAllowedError, match="title"):
        check_task(carol, {"title": " ", "assigned_to": "carol"})


def test_a_revoked_member_gets_no_token_until_restored() -> None:
    directory = Directory()
    directory.revoke("alice", event_second=int(time.time()))
    with pytest.raises(NotAllowedError, match="revoked"):
        directory.member("alice")
    directory.restore("alice")
    assert directory.member("alice").tenant == "acme"


async def test_a_token_after_a_revocation_is_issued_after_its_second() -> None:
    # The gateway refuses tokens issued at or before the event's second.
    directory = Directory()
    now = int(time.time())
    directory.revoke("alice", event_second=now)
    assert await directory.issue_time("alice") > now
    assert await directory.issue_time("bob") >= now  # others do not wait


def test_tokens_verify_with_the_secret_only() -> None:
    sessions = Sessions("s" * 32)
    token, claims = sessions.mint(Directory().person("carol"), int(time.time()))
    assert sessions.verify(token)["sub"] == claims["sub"] == "carol"
    with pytest.raises(UnauthenticatedError):
        Sessions("t" * 32).verify(token)


def test_the_session_cookie_is_http_only_lax_and_scoped_to_its_person() -> None:
    response = web.Response()
    set_cookie(response, "alice", "token")
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/as/alice/"
