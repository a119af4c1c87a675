"""Line-aware reading of YAML nodes for ops files (rule tests), problems collected not raised.

The rules loader's reader (gateway/rules/nodes.py): compose the document into nodes (which know
their line), read them against a schema, and report every problem as `PATH:LINE: key: message`
through the rules' own `Problem`/`RulesError`, so a broken test file reads like a broken rules
file. Unlike rules, test files expand no `${VAR}`: a test states literal expectations.
"""

from __future__ import annotations

import yaml

from gateway.rules.nodes import NodeReader as RulesNodeReader
from gateway.rules.nodes import compose_document, line_of

__all__ = ["NodeReader", "compose_document", "line_of"]


class NodeReader(RulesNodeReader):
    """The rules' node reader, with strings read as a test states them: a number is its text
    (`project_id: 2` means "2"), and one string stands for a list of one."""

    def string(self, node: yaml.Node, key: str) -> str:
        """A non-empty string; numbers are taken as their text (`project_id: 2` means "2")."""
        value = self.scalar(node, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(node.value)
        if not isinstance(value, str) or not value:
            if isinstance(node, yaml.ScalarNode):
                self.problem(node, key, "must be a non-empty string")
            return ""
        return value

    def strings(self, node: yaml.Node, key: str) -> list[str]:
        """A list of strings, or one string standing for a list of one."""
        if isinstance(node, yaml.ScalarNode):
            value = self.string(node, key)
            return [value] if value else []
        return [value for item in self.sequence(node, key) if (value := self.string(item, key))]

    def string_map(self, node: yaml.Node, key: str) -> dict[str, str]:
        entries = self.mapping(node, key)
        return {name: self.string(value, f"{key}.{name}") for name, value in entries.items()}
