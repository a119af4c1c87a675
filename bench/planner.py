"""Planner cost per request: token verification (cold and cached), identity, query parse, plan.

Run: `python -m bench.planner`. Prints microseconds per operation (median of 5 rounds). This is
the work the gateway adds before any byte goes upstream; the HTTP benchmark (the gateway next to
nginx and going direct, over real sockets) is bench/compare.py.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jwt

from gateway.auth.identity import resolve_identity
from gateway.auth.keys import KeyRing, StaticKeys, hmac_key
from gateway.auth.tokens import TokenPolicy, TokenVerifier, verify_token
from gateway.rules.load import load_rules
from gateway.rules.model import Upstream
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request

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


def main() -> None:
    now = int(time.time())
    claims = {"sub": "alice", "tid": "acme", "role": "member", "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    keys = StaticKeys((hmac_key(SECRET),))
    verifier = TokenVerifier(KeyRing(keys), TokenPolicy())
    identity = resolve_identity(claims, RULES.identity)
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
            lambda: loop.run_until_complete(verifier.verify(token))
        ),
        "resolve identity": per_call_us(lambda: resolve_identity(claims, RULES.identity)),
        "parse query + plan (live poll, no client where)": per_call_us(
            lambda: plan_upstream_request(parse_shape_query(live), identity, RULES)
        ),
        "parse query + plan (client where, cached)": per_call_us(
            lambda: plan_upstream_request(parse_shape_query(with_where), identity, RULES)
        ),
    }
    loop.close()
    width = max(map(len, results))
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.1f} µs")


if __name__ == "__main__":
    main()
