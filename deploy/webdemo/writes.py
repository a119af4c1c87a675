"""The app's write path: a task goes into PostgreSQL, and reaches every panel allowed to see
it through Electric and the gateway, never through this server's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import psycopg

from deploy.webdemo.directory import PEOPLE, NotAllowedError, Person

TITLE_LIMIT: Final = 120


@dataclass(frozen=True, slots=True)
class Task:
    title: str
    assigned_to: str


def check_task(author: Person, body: object) -> Task:
    """A member assigns tasks to themselves; an admin to anyone in their tenant."""
    if not isinstance(body, dict):
        raise NotAllowedError("send a JSON object {title, assigned_to}")
    title, assigned_to = body.get("title"), body.get("assigned_to", author.user)
    if not isinstance(title, str) or not title.strip() or len(title) > TITLE_LIMIT:
        raise NotAllowedError(f"a title is 1 to {TITLE_LIMIT} characters")
    colleagues = {p.user for p in PEOPLE if p.tenant == author.tenant}
    if assigned_to not in colleagues:
        raise NotAllowedError(f"{assigned_to!r} is not in {author.tenant}")
    if author.role == "member" and assigned_to != author.user:
        raise NotAllowedError("a member assigns tasks to themselves only")
    return Task(title.strip(), assigned_to)


async def insert_task(database: str, author: Person, task: Task) -> int:
    """Insert under a table lock (ids are the demo's plain integers); the new id."""
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        await conn.execute("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")
        cursor = await conn.execute(
            "INSERT INTO tasks (id, tenant_id, project_id, title, status, assigned_to, "
            "internal_notes) SELECT COALESCE(MAX(id), 0) + 1, %(tenant)s, "
            "(SELECT MIN(id) FROM projects WHERE tenant_id = %(tenant)s), %(title)s, 'open', "
            "%(assigned)s, %(notes)s FROM tasks RETURNING id",
            {
                "tenant": author.tenant,
                "title": task.title,
                "assigned": task.assigned_to,
                "notes": f"added by {author.user}; {author.tenant} admins only",
            },
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])
