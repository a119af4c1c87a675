"""The demo server's routes, for both ways in.

Bearer mode: the page holds a token from `POST /api/sign-in` and calls the gateway on its own
origin (CORS). Cookie mode: `POST /as/USER/api/sign-in` sets an HttpOnly cookie for
`/as/USER/`, and the page reads shapes from `/as/USER/v1/shape` on its own origin, proxied to
the gateway. Both serve the same page, the pinned `@electric-sql/client` and the gateway's client
package (`clients/js`, linked) from node_modules, the task write and the admin actions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from deploy.webdemo import proxy
from deploy.webdemo.admin import GatewayAdmin, PublishError, event_second
from deploy.webdemo.directory import PEOPLE, Directory, NotAllowedError
from deploy.webdemo.sessions import Sessions, UnauthenticatedError, clear_cookie, set_cookie
from deploy.webdemo.writes import check_task, insert_task

WEB: Final = Path(__file__).resolve().parent.parent / "web"
CLIENT_DIST: Final = WEB / "node_modules" / "@electric-sql" / "client" / "dist"
PACKAGE_DIST: Final = WEB / "node_modules" / "@shape-gateway" / "client" / "dist"
INSTALL_HINT: Final = (
    "npm ci --prefix clients/js && npm run build --prefix clients/js && npm ci --prefix deploy/web"
)
JSON: Final = "application/json"


class Mode(StrEnum):
    BEARER = "bearer"
    COOKIE = "cookie"


@dataclass(frozen=True, slots=True)
class Backend:
    """What both apps share: one directory, one token issuer, one gateway client."""

    gateway: str  # the gateway as the browser and this server reach it
    database: str
    directory: Directory
    sessions: Sessions
    admin: GatewayAdmin
    upstream: aiohttp.ClientSession  # the proxy's


BACKEND: Final = web.AppKey("backend", Backend)
MODE: Final = web.AppKey("mode", Mode)
OTHER: Final = web.AppKey("other", str)


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={hdrs.CACHE_CONTROL: "no-store"})


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Writes only from this origin, as JSON (a cross-site form cannot send either); the
    app's refusals as JSON; the page's files revalidated on every load."""
    if request.method == hdrs.METH_POST and "/api/" in request.path:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin != f"{request.scheme}://{request.host}" or request.content_type != JSON:
            return _json({"error": "forbidden", "message": "POST JSON from this page"}, 403)
    try:
        response = await handler(request)
    except NotAllowedError as error:
        return _json({"error": "not_allowed", "message": str(error)}, 403)
    except UnauthenticatedError as error:
        return _json({"error": "unauthenticated", "message": str(error)}, 401)
    except PublishError as error:
        return _json({"error": "gateway_refused", "message": str(error)}, 502)
    except json.JSONDecodeError:
        return _json({"error": "bad_request", "message": "the body is not JSON"}, 400)
    if "/v1/" not in request.path:
        response.headers.setdefault(hdrs.CACHE_CONTROL, "no-cache")
    return response


def installed() -> bool:
    """Both packages the page imports are there (the client package built)."""
    return CLIENT_DIST.is_dir() and (PACKAGE_DIST / "index.js").is_file()


async def index(request: web.Request) -> web.StreamResponse:
    if not installed():
        return web.Response(
            status=503, text=f"the page's npm packages are not installed: run `{INSTALL_HINT}`"
        )
    return web.FileResponse(WEB / "index.html")


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB / "app.css")


async def config(request: web.Request) -> web.Response:
    backend, mode = request.app[BACKEND], request.app[MODE]
    return _json(
        {
            "mode": mode.value,
            "gateway": backend.gateway if mode is Mode.BEARER else None,
            "other": request.app[OTHER],
            "people": [{"user": p.user, "tenant": p.tenant, "role": p.role} for p in PEOPLE],
        }
    )


async def _sign_in(request: web.Request, user: str) -> tuple[str, dict[str, Any]]:
    backend = request.app[BACKEND]
    person = backend.directory.member(user)
    issued_at = await backend.directory.issue_time(user)
    return backend.sessions.mint(person, issued_at)


async def bearer_sign_in(request: web.Request) -> web.Response:
    body = await request.json()
    user = body.get("user") if isinstance(body, dict) else None
    token, claims = await _sign_in(request, str(user))
    return _json({"token": token, "claims": claims})


async def cookie_sign_in(request: web.Request) -> web.Response:
    user = request.match_info["user"]
    token, claims = await _sign_in(request, user)
    response = _json({"claims": claims})
    set_cookie(response, user, token)
    return response


async def cookie_sign_out(request: web.Request) -> web.Response:
    response = _json({"signed_out": True})
    clear_cookie(response, request.match_info["user"])
    return response


async def add_task(request: web.Request) -> web.Response:
    backend, cookie = request.app[BACKEND], request.app[MODE] is Mode.COOKIE
    claims = backend.sessions.from_request(request, cookie)
    if cookie and claims["sub"] != request.match_info["user"]:
        raise UnauthenticatedError("this cookie belongs to someone else")
    author = backend.directory.member(str(claims["sub"]))
    if author.tenant in backend.directory.suspended:
        raise NotAllowedError(f"{author.tenant} is suspended")
    if claims["iat"] < backend.directory.not_before.get(author.user, 0):
        raise UnauthenticatedError("this token predates a revocation; sign in again")
    task = check_task(author, await request.json())
    return _json({"id": await insert_task(backend.database, author, task)}, 201)


async def directory(request: web.Request) -> web.Response:
    return _json(request.app[BACKEND].directory.as_json())


async def admin_action(request: web.Request) -> web.Response:
    """revoke/restore a user's membership, suspend/reinstate a tenant; the gateway's event."""
    backend, action = request.app[BACKEND], request.match_info["action"]
    body = await request.json()
    target = str(body.get("user") or body.get("tenant") or "") if isinstance(body, dict) else ""
    people, event = backend.directory, None
    if action == "revoke":
        person = people.person(target)
        event = await backend.admin.publish(
            {"type": "membership.revoked", "user": person.user, "tenant": person.tenant}
        )
        people.revoke(person.user, event_second(str(event["id"])))
    elif action == "restore":
        people.restore(target)  # no event: the app simply issues new tokens again
    elif action == "suspend":
        event = await backend.admin.publish(
            {"type": "tenant.suspended", "tenant": people.tenant(target)}
        )
        people.suspend(target)
    elif action == "reinstate":
        event = await backend.admin.publish(
            {"type": "tenant.reinstated", "tenant": people.tenant(target)}
        )
        people.reinstate(target)
    else:
        raise web.HTTPNotFound
    return _json({"event": event, "directory": people.as_json()})


async def forward(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    return await proxy.forward(request, backend.gateway, backend.upstream)


def make_app(backend: Backend, mode: Mode, other: str) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[BACKEND], app[MODE], app[OTHER] = backend, mode, other
    routes = app.router
    routes.add_get("/", index)
    routes.add_static("/js/", WEB / "js")
    routes.add_get("/app.css", stylesheet)
    if installed():
        routes.add_static("/node_modules/@electric-sql/client/dist/", CLIENT_DIST)
        # A link to clients/js: served from where it points.
        routes.add_static("/node_modules/@shape-gateway/client/dist/", PACKAGE_DIST.resolve())
    routes.add_get("/api/config", config)
    routes.add_get("/api/admin/directory", directory)
    routes.add_post("/api/admin/{action}", admin_action)
    if mode is Mode.BEARER:
        routes.add_post("/api/sign-in", bearer_sign_in)
        routes.add_post("/api/tasks", add_task)
    else:
        routes.add_post("/as/{user}/api/sign-in", cookie_sign_in)
        routes.add_post("/as/{user}/api/sign-out", cookie_sign_out)
        routes.add_post("/as/{user}/api/tasks", add_task)
        routes.add_route("*", "/as/{user}/v1/{tail:.*}", forward)
    return app
