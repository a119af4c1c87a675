"""A fuzzer over the HTTP surface: generated raw requests (methods, encoded and dot-segment
paths, odd header bytes, duplicated and encoded parameters, hostile wheres, bodies) sent to a
real running gateway in front of a recording upstream. For every one:

- the gateway answers, and never with a 5xx (the upstream always answers 200);
- the upstream is called only for a request whose token verified;
- every upstream request carries Electric's secret and one table, and its where holds the
  rule's where for the caller as conjuncts, bound to the caller's own values.

The gateway and the upstream run on an event loop in a thread; hypothesis drives plain
sockets from the test's thread, so each example is a real TCP exchange.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from pglast import ast, parse_sql
from pglast.enums import BoolExprType

from gateway.rules.load import parse_rules
from gateway.rules.model import Rules, Upstream
from gateway.server.serve import start
from gateway.settings import load_settings
from tests.factories import SECRET, SHIPPED_RULES, make_token
from tests.gateway import ADMIN_TOKEN

EXAMPLES = 2000
UPSTREAM_SECRET = "fuzz-upstream-secret-0123456789"
RULES_TEXT = SHIPPED_RULES.read_text().replace(
    "default: {requests_per_minute: 600, tenant_requests_per_minute: 6000,",
    "default: {requests_per_minute: 10000000, tenant_requests_per_minute: 100000000,",
)
# Tokens the gateway accepts, and what the rules must then pin them to.
CALLERS: dict[str, dict[str, Any]] = {
    "alice": {"sub": "alice", "tid": "acme", "role": "member"},
    "bob": {"sub": "bob", "tid": "acme", "role": "manager"},
    "carol": {"sub": "carol", "tid": "globex", "role": "admin",
              "tenants": {"globex": "admin", "acme": "member"}},
    "dave": {"sub": "dave:1", "tid": "acme-eu", "role": "member"},
    "eve": {"sub": "e\udcffve", "tid": "acme", "role": "member"},  # a lone surrogate, from JSON
}  # fmt: skip
VALID = {name: make_token(**claims) for name, claims in CALLERS.items()}


class Recorder:
    """The upstream: answers every shape request like Electric's 200 and keeps its query."""

    def __init__(self) -> None:
        self.calls: list[MultiDict[str]] = []
        self.lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/v1/health":  # the gateway's probe, not a client's request
            return web.json_response({"status": "active"})
        with self.lock:
            self.calls.append(MultiDict(request.query))
        if request.method == "POST":
            await request.read()
        headers = {"electric-handle": "1-2", "electric-offset": "0_0", "electric-schema": "{}",
                   "content-type": "application/json"}  # fmt: skip
        return web.Response(body=b"[]", headers=headers)

    def take(self) -> list[MultiDict[str]]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


@dataclasses.dataclass
class Served:
    host: str
    port: int
    recorder: Recorder
    rules: Rules


async def _serve(tmp: Path, recorder: Recorder, stop: asyncio.Event, up: list[Any]) -> None:
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", recorder.handle)
    upstream_runner = web.AppRunner(upstream, access_log=None)
    await upstream_runner.setup()
    site = web.TCPSite(upstream_runner, "127.0.0.1", 0)
    await site.start()
    upstream_url = f"http://127.0.0.1:{upstream_runner.addresses[0][1]}"
    rules_path = tmp / "rules.yaml"
    rules_path.write_text(RULES_TEXT)
    gateway_settings = dataclasses.replace(
        load_settings({}), host="127.0.0.1", port=0, rules_path=str(rules_path),
        electric_url=upstream_url, electric_secret=UPSTREAM_SECRET, jwt_secret=SECRET,
        admin_token=ADMIN_TOKEN, auth_cookie="sg", cors_origins=("https://app.example",),
        header_timeout=2,
    )  # fmt: skip
    runner, _ = await start(gateway_settings, {}, grace=0.5)
    up.append(runner.addresses[0][:2])
    await stop.wait()
    await runner.cleanup()
    await upstream_runner.cleanup()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    recorder, stop = Recorder(), asyncio.Event()
    up: list[Any] = []
    loop = asyncio.new_event_loop()
    tmp = tmp_path_factory.mktemp("fuzz")
    thread = threading.Thread(
        target=loop.run_until_complete, args=(_serve(tmp, recorder, stop, up),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not up:
        assert time.monotonic() < deadline, "the fuzz gateway did not start"
        time.sleep(0.01)
    rules = parse_rules(
        RULES_TEXT, path="rules.yaml", env={}, default_upstream=Upstream("default", "", None)
    )
    yield Served(up[0][0], up[0][1], recorder, rules)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


# --- the requests -------------------------------------------------------------------------

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
PATHS = [
    "/v1/shape", "/v1/shape/", "/v1//shape", "/v1/%73hape", "/v1/shape/../shape", "/v1/./shape",
    "/%2e%2e/v1/shape", "//v1/shape", "/V1/SHAPE", "/v1/shape%00", "/v1/events",
    "/v1/memberships", "/v1/audit-events", "/admin/rules", "/admin/../v1/shape", "/healthz",
    "/metrics", "/nowhere", "*",
]  # fmt: skip
KEYS = [
    "table", "offset", "live", "handle", "where", "params[1]", "params[2]", "params[3]",
    "columns", "secret", "api_secret", "%74able", "subset__where", "subset__params",
    "subset__order_by", "subset__limit", "cursor", "replica", "log", "live_sse", "x",
    "table[]", "params[0]", "params%5B1%5D", "TABLE", "where ",
]  # fmt: skip
VALUES = [
    "tasks", "drafts", "projects", "countries", "documents", "public.tasks", "tasks\x00",
    "-1", "0_0", "now", "true", "false", "1-2", "id,title", "id,salary", '"id"', "full",
    "1=1) OR (1=1", "status = 'open' OR true", "tenant_id = 'globex'", "status = $1",
    "project_id IN (1, 2)", "NOT status = 'x'", "status = 'a'; DROP TABLE x", "status = 'a' --",
    "(SELECT 1) = 1", "status = $1 AND project_id = $2", "status::int4 > 3", '{"1": "open"}',
    "title DESC", "salary", "open", "' OR '1'='1", "$1", "ü", "%ff", "%00",
]  # fmt: skip
CALLER = st.sampled_from(list(VALID)).map(lambda name: ("caller", name))
BAD_AUTH = st.one_of(
    st.sampled_from([
        b"Bearer " + make_token(key="some-other-secret-some-other-secret-0").encode(),
        b"Bearer " + make_token(iat=1_000_000, exp=1_000_060).encode(),
        b"Bearer " + make_token(role="owner").encode(), b"Basic YWxpY2U6cHc=", b"Bearer",
        b"Bearer \xff\xfe", b"Bearer " + ADMIN_TOKEN.encode(), b"bearer  x.y.z",
        b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
    ]).map(lambda raw: ("raw", raw)),
    st.just(("none", b"")),
)  # fmt: skip


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """`usual` about four times in five: most examples should get far into the gateway."""
    return draw(usual if draw(st.integers(0, 4)) < 4 else other)


HEADERS = st.lists(
    st.tuples(
        st.sampled_from([b"X-Tenant-Id", b"Cookie", b"Origin", b"Sec-Fetch-Site", b"Accept",
                         b"If-None-Match", b"Last-Event-ID", b"Content-Type", b"Authorization"]),
        st.one_of(st.sampled_from([b"acme", b"globex", b"acme-eu", b"\xff\xfe", b"cross-site",
                                   b"https://app.example", b"sg=x; sg=y", b"1-0", b""]),
                  st.text(max_size=20).map(lambda t: t.encode("utf-8", "replace"))
                  .map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))),
    ),
    max_size=2,
)  # fmt: skip
# Requests that are not quite HTTP: aiohttp's own parser answers them (a plain 400).
MANGLED_LINES = [b"X-\xff: 1", b"Bad Header", b"X-Ctl: \x01\x02",
                 b"Transfer-Encoding: chunked, identity"]  # fmt: skip
MANGLED_METHODS = ["get", "BREW", "G\u00e9T"]


COLUMNS = ["status", "project_id", "title", "tenant_id", "assigned_to", "salary", '"status"',
           "tasks.status", "$1"]  # fmt: skip
LITERALS = ["'open'", "1", "$1", "$2", "NULL", "true", "'acme'", "'x'' OR ''1''=''1'",
            "(SELECT 1)", "now()", "'5'::int4", "$1::int4", "ARRAY[1]"]  # fmt: skip
COMPARISONS = st.builds(
    "{} {} {}".format,
    st.sampled_from(COLUMNS),
    st.sampled_from(["=", "<>", "<", ">=", "LIKE", "ILIKE", "IS", "IN", "@>", "||"]),
    st.sampled_from(LITERALS),
)
WHERES = st.recursive(
    COMPARISONS,
    lambda inner: st.one_of(
        st.builds("({}) AND ({})".format, inner, inner),
        st.builds("{} OR {}".format, inner, inner),
        st.builds("NOT {}".format, inner),
        st.builds("({}".format, inner),  # unbalanced, as an injection would try
        st.builds("{}) OR (true".format, inner),
        st.builds("{}; DROP TABLE tasks".format, inner),
        st.builds("{} -- ".format, inner),
    ),
    max_leaves=4,
)


def _encode(text: str, mode: int) -> str:
    if mode == 0:
        return quote(text, safe="")
    if mode == 1:
        return quote(text, safe="[]$,'=()")  # partly raw, as a sloppy client would
    return "".join(f"%{b:02X}" for b in text.encode())  # everything encoded


def effective(caller: str | None, headers: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The identity the gateway must resolve: the token's, or the membership `X-Tenant-Id`
    picks (a tenant outside the token is refused, so it never reaches Electric)."""
    if caller is None:
        return None
    claims = CALLERS[caller]
    identity = {"user": str(claims["sub"]), "tenant": str(claims["tid"]),
                "role": str(claims["role"])}  # fmt: skip
    picked = [value for name, value in headers if name.lower() == b"x-tenant-id"]
    memberships: dict[str, str] = claims.get("tenants", {})
    if len(picked) == 1 and picked[0].decode("latin-1") in memberships:
        tenant = picked[0].decode("latin-1")
        identity |= {"tenant": tenant, "role": memberships[tenant]}
    return identity


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str] | None]:
    malformed = draw(st.integers(0, 11))  # 10, 11: not quite HTTP (aiohttp's parser answers)
    method = mostly(draw, st.just("GET"), st.sampled_from(METHODS))
    if malformed == 10:
        method = draw(st.sampled_from(MANGLED_METHODS))
    path = mostly(draw, st.just("/v1/shape"), st.sampled_from(PATHS))
    value = st.one_of(st.sampled_from(VALUES), st.text(max_size=12))
    junk = st.lists(st.tuples(st.sampled_from(KEYS), value), min_size=1, max_size=4)
    pairs = draw(st.one_of(st.just([]), junk))  # parameters that spoil the request, or none
    if draw(st.integers(0, 3)):  # mostly a well-formed start
        start = [("table", mostly(draw, st.just("tasks"), st.sampled_from(VALUES[:6]))),
                 ("offset", "-1")]  # fmt: skip
        if draw(st.booleans()):
            where = draw(WHERES)
            used = sorted({int(n) for n in re.findall(r"\$(\d)", where)})
            numbers = mostly(draw, st.just(used), st.lists(st.integers(0, 3), max_size=3))
            start += [("where", where)]
            start += [(f"params[{n}]", draw(st.sampled_from(VALUES))) for n in numbers]
        pairs = [*start, *pairs]
    mode = draw(st.sampled_from([0, 0, 1, 2]))
    query = "&".join(f"{_encode(k, mode)}={_encode(v, mode)}" for k, v in pairs)
    target = path + ("?" + query if query else "")
    kind, auth = mostly(draw, CALLER, BAD_AUTH)
    caller = auth if kind == "caller" else None
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: gateway", b"Connection: close"]
    if caller is not None:
        lines.append(b"Authorization: Bearer " + VALID[str(caller)].encode())
    elif kind == "raw":
        lines.append(b"Authorization: " + bytes(auth))
    headers = draw(HEADERS)
    lines += [name + b": " + value for name, value in headers]
    if malformed == 11:
        lines.append(draw(st.sampled_from(MANGLED_LINES)))
    body = draw(st.one_of(
        st.just(b""), st.binary(max_size=64),
        st.sampled_from([b'{"where": "status = $1", "params": {"1": "open"}}', b"[]",
                         b'[{"id": "a", "action": "x", "user": "bob"}]', b"[" * 2000]),
    ))  # fmt: skip
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    identity = effective(str(caller) if caller else None, headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body, identity


def exchange(served: Served, request: bytes) -> int:
    """Send, read the whole answer (only the head of an endless event stream), return its
    status."""
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head = data.partition(b"\r\n\r\n")[0].lower()
            if b"content-type: text/event-stream" in head:
                break  # the feed: it answered, and would go on for ever
    assert data.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), data[:100]  # 1.0: the parser's 400
    code = data.partition(b'"error": "')[2].partition(b'"')[0].decode("latin-1")
    event(f"answered {data[9:12].decode()} {code}")
    return int(data[9:12])


# --- what must hold -------------------------------------------------------------------------


def _conjuncts(where: str) -> list[ast.Node]:
    statement = parse_sql("SELECT 1 FROM t WHERE " + where)[0].stmt  # noqa: S608 - parsed only
    assert isinstance(statement, ast.SelectStmt)
    assert statement.whereClause is not None
    pending: list[ast.Node] = [statement.whereClause]
    out: list[ast.Node] = []
    while pending:
        node = pending.pop()
        if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
            pending.extend(node.args or ())
        else:
            out.append(node)
    return out


def check_upstream_call(call: MultiDict[str], identity: dict[str, str], rules: Rules) -> None:
    assert call.getall("secret") == [UPSTREAM_SECRET]
    (table,) = call.getall("table")
    schema = identity["tenant"].replace("-", "_")
    shapes = [s for s in rules.shapes.values() if table == s.table.replace("{tenant}", schema)]
    assert shapes, f"the upstream was asked for {table}, which no shape names"
    shape = shapes[0]
    grant = shape.grants[identity["role"]]
    wheres = call.getall("where", [])
    assert len(wheres) <= 1
    if grant.where is None:
        assert not wheres or shape.client_where, "a where reached a shape that takes none"
        return
    assert wheres, "the rule's where is missing upstream"
    sent = _conjuncts(wheres[0])
    for conjunct in _conjuncts(grant.where.sql):
        assert conjunct in sent, f"rule term missing from {wheres[0]!r}"
    for number, binding in enumerate(grant.where.bindings, 1):
        assert call.getall(f"params[{number}]") == [identity[binding]]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_no_request_breaks_the_gateway_or_reaches_electric_unscoped(
    served: Served, request: tuple[bytes, dict[str, str] | None]
) -> None:
    raw, identity = request
    served.recorder.take()
    status = exchange(served, raw)
    assert status < 500, raw[:200]
    calls = served.recorder.take()
    event(f"reached Electric: {bool(calls)}")
    if calls:
        assert identity is not None, f"an unauthenticated request reached Electric: {raw[:200]!r}"
    for call in calls:
        assert identity is not None
        check_upstream_call(call, identity, served.rules)
