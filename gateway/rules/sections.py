"""The rules file's top-level sections other than shapes (identity, upstreams, routing,
limits), and the reader they are read with: the node reader plus `${VAR}` expansion, done on
values after parsing so a variable can never change the document's structure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeVar

import yaml

from gateway.rules.model import IdentityMap, LimitPlan, Limits, Routing, Upstream
from gateway.rules.nodes import NodeReader

_VAR: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION: Final = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION: Final = 366 * 86400  # a year and a day: longer is a typo, not a policy
_PLAN_KEYS: Final = tuple(LimitPlan.__dataclass_fields__)
T = TypeVar("T")


class RulesReader(NodeReader):
    """The node reader, with `${VAR}` expanded in strings from the environment."""

    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        super().__init__(path)
        self.env = env

    def string(self, node: yaml.Node, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value:
            if value is not None or isinstance(node, yaml.ScalarNode):
                self.problem(node, key, "must be a non-empty string")
            return ""
        value = self.expand(node, key, value)
        if pattern is not None and value and not pattern.fullmatch(value):
            self.problem(node, key, f"{value!r} must match {pattern.pattern}")
        return value

    def expand(self, node: yaml.Node, key: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.problem(node, key, f"environment variable {name} is not set")
                return ""
            return self.env[name]

        return _VAR.sub(replace, value)

    def duration(self, node: yaml.Node, key: str) -> int | None:
        """`30m`, `24h`, `7d` (s, m, h or d after a whole number) -> seconds."""
        value = self.scalar(node, key)
        found = _DURATION.fullmatch(value) if isinstance(value, str) else None
        seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)] if found else 0
        if not found or seconds > MAX_DURATION:
            self.problem(
                node, key, f"{value!r} is not a duration like 30m, 24h or 7d (at most 366d)"
            )
            return None
        return seconds

    def strings(
        self, node: yaml.Node, key: str, *, pattern: re.Pattern[str] | None = None
    ) -> list[str]:
        """A list of unique non-empty strings."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, key, "must be a list")
            return []
        values: list[str] = []
        for item in node.value:
            value = self.string(item, key, pattern=pattern)
            if value in values:
                self.problem(item, key, f"{value!r} is listed twice")
            elif value:
                values.append(value)
        return values

    def each(
        self, node: yaml.Node, key: str, read: Callable[[str, yaml.Node, yaml.Node], T]
    ) -> Iterator[tuple[str, T]]:
        for name, (key_node, value_node) in self.entries(node, key).items():
            yield name, read(f"{key}.{name}", key_node, value_node)


def read_identity(reader: RulesReader, node: yaml.Node) -> IdentityMap:
    entries = reader.entries(node, "identity", tuple(IdentityMap.__dataclass_fields__))
    values = {
        name: reader.string(value, f"identity.{name}") for name, (_, value) in entries.items()
    }
    for required in ("user", "tenant", "role"):
        if required in entries and not values[required]:
            values.pop(required)
    return IdentityMap(**values)


def read_upstreams(reader: RulesReader, node: yaml.Node, default: Upstream) -> dict[str, Upstream]:
    upstreams = {"default": default}

    def read(key: str, key_node: yaml.Node, value: yaml.Node) -> Upstream:
        entries = reader.entries(value, key, ("url", "secret"))
        url = reader.string(entries["url"][1], f"{key}.url") if "url" in entries else ""
        if "url" not in entries:
            reader.problem(value, key, "needs a url")
        elif url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            reader.problem(entries["url"][1], f"{key}.url", f"{url!r} is not an http(s) URL")
        secret = (
            reader.string(entries["secret"][1], f"{key}.secret") if "secret" in entries else None
        )
        return Upstream(name=key.rsplit(".", 1)[1], url=url.rstrip("/"), secret=secret or None)

    upstreams.update(reader.each(node, "upstreams", read))
    return upstreams


def read_routing(
    reader: RulesReader, node: yaml.Node, upstreams: Mapping[str, Upstream]
) -> Routing:
    entries = reader.entries(node, "routing", ("claim", "tenants"))
    claim = reader.string(entries["claim"][1], "routing.claim") if "claim" in entries else None
    tenants: dict[str, str] = {}
    if "tenants" in entries:
        for tenant, (_, value) in reader.entries(entries["tenants"][1], "routing.tenants").items():
            target = reader.string(value, f"routing.tenants.{tenant}")
            if target and target not in upstreams:
                reader.problem(
                    value,
                    f"routing.tenants.{tenant}",
                    f"no upstream named {target!r}; defined: {', '.join(sorted(upstreams))}",
                )
            tenants[tenant] = target
    return Routing(claim=claim or None, tenants=tenants)


def _limit_plan(reader: RulesReader, key: str, node: yaml.Node, base: LimitPlan) -> LimitPlan:
    entries = reader.entries(node, key, _PLAN_KEYS)
    values = {name: reader.integer(value, f"{key}.{name}") for name, (_, value) in entries.items()}
    return LimitPlan(**{**{n: getattr(base, n) for n in _PLAN_KEYS}, **values})


def read_limits(reader: RulesReader, node: yaml.Node) -> Limits:
    entries = reader.entries(node, "limits", ("default", "plans"))
    default = LimitPlan()
    if "default" in entries:
        default = _limit_plan(reader, "limits.default", entries["default"][1], default)
    plans = {}
    if "plans" in entries:
        for name, (_, value) in reader.entries(entries["plans"][1], "limits.plans").items():
            plans[name] = _limit_plan(reader, f"limits.plans.{name}", value, default)
    return Limits(default=default, plans=plans)
