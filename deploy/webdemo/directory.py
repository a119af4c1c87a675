"""Who the demo's people are, and whether the app would still sign them in.

The rows in deploy/seed.sql name alice and carol in tenant acme and bob in globex; the shipped
rules give a member (alice) only the tasks assigned to her and never `internal_notes`, and an
admin (carol, bob) the whole tenant. When an admin revokes a membership the app stops issuing
tokens for it, and a restored membership gets tokens issued after the revocation only: the
gateway refuses every token issued at or before the event's second.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class Person:
    user: str
    tenant: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.user} ({self.tenant} {self.role})"


PEOPLE: Final = (
    Person("alice", "acme", "member"),
    Person("carol", "acme", "admin"),
    Person("bob", "globex", "admin"),
)
TENANTS: Final = tuple(dict.fromkeys(p.tenant for p in PEOPLE))


class NotAllowedError(Exception):
    """The app would not do this for this person now; the message says why."""


@dataclass
class Directory:
    """Memberships and suspensions as the app's own database would hold them."""

    revoked: set[str] = field(default_factory=set)  # users whose membership was revoked
    suspended: set[str] = field(default_factory=set)  # tenants
    not_before: dict[str, int] = field(default_factory=dict)  # user -> first iat second to use

    def person(self, user: str) -> Person:
        for person in PEOPLE:
            if person.user == user:
                return person
        raise NotAllowedError(f"{user!r} is not a demo user (alice, carol, bob)")

    def member(self, user: str) -> Person:
        """The person, if the app still counts them as a member of their tenant."""
        person = self.person(user)
        if user in self.revoked:
            raise NotAllowedError(
                f"{user}'s membership in {person.tenant} was revoked; restore it in the admin view"
            )
        return person

    def revoke(self, user: str, event_second: int) -> Person:
        person = self.person(user)
        self.revoked.add(user)
        self.not_before[user] = event_second + 1
        return person

    def restore(self, user: str) -> Person:
        person = self.person(user)
        self.revoked.discard(user)
        return person

    def suspend(self, tenant: str) -> None:
        self.suspended.add(self.tenant(tenant))

    def reinstate(self, tenant: str) -> None:
        self.suspended.discard(self.tenant(tenant))

    async def issue_time(self, user: str) -> int:
        """Now, in whole seconds, but never in or before the second of the user's last
        revocation (the gateway would refuse such a token); waits at most a second."""
        delay = self.not_before.get(user, 0) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return int(time.time())

    def as_json(self) -> dict[str, object]:
        return {
            "people": [
                {
                    "user": p.user,
                    "tenant": p.tenant,
                    "role": p.role,
                    "member": p.user not in self.revoked,
                }
                for p in PEOPLE
            ],
            "tenants": [{"tenant": t, "suspended": t in self.suspended} for t in TENANTS],
        }

    @staticmethod
    def tenant(name: str) -> str:
        if name not in TENANTS:
            raise NotAllowedError(f"{name!r} is not a demo tenant (acme, globex)")
        return name
