"""The live rules: reloaded when the file changes, on SIGHUP and on POST /admin/reload.

Change detection polls `stat()` through symlinks once a second, comparing (real path, inode,
mtime, size): that sees editors' write-to-temp-and-rename, Kubernetes ConfigMap `..data`
symlink swaps and plain overwrites alike, where inotify on the original inode would not. A
reload that fails keeps the last good rules and records why. Every reload logs its outcome:
`rules_reloaded`, `rules_unchanged`, `rules_reload_failed`, or `rules_reload_recovered` (the
first good load after a failed one).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from gateway.rules.load import RulesError, load_rules
from gateway.rules.model import Rules, Upstream

log = structlog.get_logger(__name__)
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    changed: bool
    digest: str
    problems: tuple[str, ...] = ()


def _signature(path: str) -> tuple[str, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)


class RulesHolder:
    """The rules every request is planned with; swapped atomically by `reload()`."""

    def __init__(
        self, path: str, env: Mapping[str, str], default_upstream: Upstream, rules: Rules
    ) -> None:
        self.path = path
        self.env = env
        self.default_upstream = default_upstream
        self.rules = rules
        self.loaded_at = time.time()
        self.last_error: tuple[str, ...] = ()
        self.reloads = 0
        self.failures = 0
        self.observers: list[Callable[[ReloadResult], None]] = []
        self._signature = _signature(path)

    @classmethod
    def load(cls, path: str, env: Mapping[str, str], default_upstream: Upstream) -> RulesHolder:
        """Load at start-up; RulesError propagates so `serve` can print it and exit."""
        return cls(
            path,
            env,
            default_upstream,
            load_rules(path, env=env, default_upstream=default_upstream),
        )

    def reload(self, trigger: str) -> ReloadResult:
        self._signature = _signature(self.path)
        try:
            rules = load_rules(self.path, env=self.env, default_upstream=self.default_upstream)
        except RulesError as error:
            self.failures += 1
            self.last_error = tuple(str(p) for p in error.problems)
            log.error(  # noqa: TRY400 - the problems are the story, not a traceback
                "rules_reload_failed",
                trigger=trigger,
                path=self.path,
                kept=self.rules.digest,
                problems=list(self.last_error),
            )
            return self._tell(
                ReloadResult(
                    ok=False, changed=False, digest=self.rules.digest, problems=self.last_error
                )
            )
        changed = rules.digest != self.rules.digest
        recovered = bool(self.last_error)
        self.rules, self.last_error, self.loaded_at = rules, (), time.time()
        if changed:
            self.reloads += 1
        # Every reload says how it ended, so the last line about the rules is never a stale
        # error: a file fixed after a failed reload is `rules_reload_recovered` (changed or not).
        event = (
            "rules_reload_recovered"
            if recovered
            else "rules_reloaded"
            if changed
            else "rules_unchanged"
        )
        log.info(event, trigger=trigger, path=self.path, digest=rules.digest, changed=changed)
        return self._tell(ReloadResult(ok=True, changed=changed, digest=rules.digest))

    def _tell(self, result: ReloadResult) -> ReloadResult:
        for observer in self.observers:
            observer(result)
        return result

    def changed_on_disk(self) -> bool:
        return _signature(self.path) != self._signature

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        """Reload whenever the file (or the symlink chain to it) changes. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed_on_disk():
                self.reload("file_changed")
