"""The environment for ops commands that judge access (`test`, `diff`): an unset `${VAR}`
reads as a placeholder instead of failing the load.

`${VAR}` holds deployment values (upstream URLs, Electric's secret) that CI usually does not
have and that decide nothing about who may read what. Serving and `check` still refuse an unset
variable; `test` and `diff` load with `http://unset.invalid/${VAR}` in its place (a valid URL,
and the same on both sides of a diff, so an unset variable is never reported as a change) and
say which variables they did not find.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


def placeholder(name: str) -> str:
    return f"http://unset.invalid/${{{name}}}"


class PlaceholderEnv(Mapping[str, str]):
    """`env`, plus a placeholder for any variable it lacks; `missing` records which were read."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.missing: set[str] = set()

    def __getitem__(self, name: str) -> str:
        if name in self._env:
            return self._env[name]
        self.missing.add(name)
        return placeholder(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)
