"""Publishing revocations through the gateway's admin API, with GATEWAY_ADMIN_TOKEN.

The page asks this server; this server holds the admin token. The gateway answers 202 with the
event's id, whose millisecond part is the event's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp


class PublishError(Exception):
    """The gateway did not accept the event; the message carries its answer."""


@dataclass(frozen=True, slots=True)
class GatewayAdmin:
    gateway: str
    token: str
    session: aiohttp.ClientSession

    async def publish(self, event: dict[str, str]) -> dict[str, Any]:
        async with self.session.post(
            f"{self.gateway}/admin/revocations",
            json=event,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            if response.status != 202:
                raise PublishError(f"gateway answered {response.status}: {body}")
            return body


def event_second(event_id: str) -> int:
    """The whole second of an event from its stream id, `1700000000000-0`."""
    return int(event_id.split("-", 1)[0]) // 1000
