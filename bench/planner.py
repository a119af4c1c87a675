"""Planner cost per request: token verification (cold and cached), identity, query parse, plan,
and the upstream request's head.

Run: `python -m bench.planner`. Prints microseconds per operation (median of 5 rounds), then the
event-loop CPU of checking a client where seen for the first time (the check is cached after
that): 1 KiB of typical filters, and the largest where the gateway accepts
(`MAX_WHERE_LENGTH` bytes, `MAX_WHERE_TOKENS` tokens) in the shapes that cost most per token.
The target is under 25 ms for every one (#17). This is the work the gateway adds before any
byte goes upstream; the HTTP benchmark (the gateway next to nginx and going direct, over real
sockets) is bench/compare.py.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from pglast.parser import scan

from gateway.auth.identity import resolve_identity
from gateway.auth.keys import KeyRing, StaticKeys, hmac_key
from gateway.auth.tokens import TokenPolicy, TokenVerifier, token_digest, verify_token
from gateway.decisions import Caller, Decisions
from gateway.rules.load import load_rules
from gateway.rules.model import Upstream
from gateway.shape.client_where import MAX_WHERE_LENGTH, MAX_WHERE_TOKENS, check_client_where
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request
from gateway.upstream.client import _head

SECRET = "bench-secret-bench-secret-bench-secret"
RULES = load_rules(
    Path(__file__).resolve().parent.parent / "shape_rules.yaml",
    env={},
    default_upstream=Upstream("default", "http://127.0.0.1:3000", "s"),
)


def per_call_us(fn: Callable[[], object], n: int = 20_000) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def cpu_ms(fn: Callable[[], object], n: int = 9) -> tuple[float, float]:
    """Least and median thread CPU time of `fn`, in ms: what it takes from the event loop
    (other processes on the machine inflate even CPU time; the least is the quietest run)."""
    times = []
    for _ in range(n):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3


def largest_where(
    piece: Callable[[int], str], sep: str, head: str = "", tail: str = "", size: int = 0
) -> str:
    """`head piece(0) sep piece(1) ... tail`, as long as the gateway accepts (or `size` bytes)."""
    limit, parts = size or MAX_WHERE_LENGTH, list[str]()
    while True:
        candidate = head + sep.join([*parts, piece(len(parts))]) + tail
        if len(candidate) > limit or len(scan(candidate)) > MAX_WHERE_TOKENS:
            return head + sep.join(parts) + tail
        parts.append(piece(len(parts)))


def where_check_ms() -> dict[str, tuple[float, float]]:
    """First-sight CPU of a client where (`check_client_where` uncached)."""
    allowed = frozenset({"status", "project_id"})

    def typical(i: int) -> str:
        return f"status = 'v{i}'" if i % 2 else f"project_id IN ({i}, {i + 1}, {i + 2})"

    wheres = {
        "1 KiB of filters": largest_where(typical, " OR ", size=1024),
        "largest: typical filters": largest_where(typical, " OR "),
        "largest: IN list of values": largest_where(lambda i: "1", ",", "project_id IN (", ")"),
        "largest: IN list of $n": largest_where(lambda i: f"${i + 1}", ",", "project_id IN (", ")"),
        "largest: OR of comparisons": largest_where(lambda i: "status='a'", " OR "),
        "largest: OR of casts": largest_where(lambda i: "project_id::int4=1", " OR "),
        "largest: OR of BETWEENs": largest_where(lambda i: "project_id BETWEEN 1 AND 2", " OR "),
    }
    results = {}
    for name, where in wheres.items():

        def check(where: str = where) -> None:
            check_client_where(where, allowed, 1)  # pure: the decisions cache is not asked

        check()  # accepted: a refusal would be cheaper and measure nothing
        tokens = len(scan(where))
        results[f"client where, first sight: {name} ({len(where)} B, {tokens} tokens)"] = cpu_ms(
            check
        )
    return results


def main() -> None:
    now = int(time.time())
    claims = {"sub": "alice", "tid": "acme", "role": "member", "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    keys = StaticKeys((hmac_key(SECRET),))
    decisions = Decisions(TokenVerifier(KeyRing(keys), TokenPolicy()))
    identity = resolve_identity(claims, RULES.identity)
    caller = Caller(token_digest(token), None)
    live = [("table", "tasks"), ("offset", "26800584_4"), ("handle", "1-2"), ("live", "true"),
            ("cursor", "123"), ("log", "full")]  # fmt: skip
    with_where = [*live, ("where", "status = $1 AND project_id IN ($2, $3)"),
                  ("params[1]", "open"), ("params[2]", "1"), ("params[3]", "2")]  # fmt: skip
    loop = asyncio.new_event_loop()

    results = {
        "verify token (HS256, uncached)": per_call_us(
            lambda: verify_token(token, keys, TokenPolicy(), now), 5_000
        ),
        "verify token (cached)": per_call_us(
            lambda: loop.run_until_complete(decisions.claims(token))
        ),
        "resolve identity": per_call_us(lambda: resolve_identity(claims, RULES.identity)),
        "resolve identity (cached)": per_call_us(
            lambda: decisions.identity(caller, claims, RULES.identity)
        ),
        "parse query + plan (live poll, no client where, uncached)": per_call_us(
            lambda: plan_upstream_request(parse_shape_query(live), identity, RULES)
        ),
        "parse query + plan (live poll, no client where, cached)": per_call_us(
            lambda: decisions.plan(parse_shape_query(live), caller, identity, RULES)
        ),
        "parse query + plan (client where, cached)": per_call_us(
            lambda: decisions.plan(parse_shape_query(with_where), caller, identity, RULES)
        ),
        "encode the upstream request's head (client where, cached)": per_call_us(
            lambda: _head(
                decisions.plan(parse_shape_query(with_where), caller, identity, RULES),
                "GET",
                {},
                None,
            )
        ),
    }
    loop.close()
    checks = where_check_ms()
    width = max(map(len, [*results, *checks]))
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.1f} µs")
    for name, (least, median) in checks.items():
        print(f"{name:<{width}}  {least:5.1f} / {median:4.1f} ms CPU, least / median (< 25)")


if __name__ == "__main__":
    main()
