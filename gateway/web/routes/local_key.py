"""GET /v1/local-key: the caller's local encryption key for the active tenant.

Present only with `GATEWAY_LOCAL_KEY_SECRET` (web/app.py); admitted like a shape request, so
a caller whose access ended is refused with the same codes. Never stored by any cache.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from gateway.auth.local_keys import derive_local_key
from gateway.web.keys import IDENTITY, SETTINGS


async def get_local_key(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    identity = request[IDENTITY]
    assert settings.local_key_secret is not None  # the route exists only with the secret
    local = derive_local_key(
        settings.local_key_secret, settings.local_key_epoch, identity.user, identity.tenant
    )
    return web.json_response(
        local.as_json(settings.local_key_lease), headers={hdrs.CACHE_CONTROL: "no-store"}
    )
