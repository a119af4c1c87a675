"""The running demo, as the browser tests reach it."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg


@dataclass(frozen=True)
class Demo:
    """The running demo: its two origins, the gateway and the database it writes."""

    app: str  # bearer: the page here, the gateway on another origin
    same_origin: str  # cookie: /as/USER/v1/* proxied to the gateway
    gateway: str
    database: str
    log: Path

    def reset(self) -> None:
        """Everyone back in, every tenant active, the seed's tasks only (deploy/seed.sql)."""
        with psycopg.connect(self.database, autocommit=True) as conn:
            conn.execute("DELETE FROM tasks WHERE id > 3")
        directory = self.admin("directory")
        for person in directory["people"]:
            if not person["member"]:
                self.admin("restore", user=person["user"])
        for tenant in directory["tenants"]:
            if tenant["suspended"]:
                self.admin("reinstate", tenant=tenant["tenant"])

    def admin(self, action: str, **target: str) -> dict[str, Any]:
        """The admin view's calls, made as the page makes them (same origin, JSON)."""
        url = f"{self.app}/api/admin/{action}"
        request = urllib.request.Request(url)  # noqa: S310 - http to our own loopback server
        if action != "directory":
            request = urllib.request.Request(  # noqa: S310 - http to our own loopback server
                url,
                data=json.dumps(target).encode(),
                headers={"Content-Type": "application/json", "Origin": self.app},
            )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - same
            body: dict[str, Any] = json.load(answer)
            return body
