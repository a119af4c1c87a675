"""Line-aware YAML reading: compose a document into nodes (which know their line), read them
against a schema, and collect every problem as `PATH:LINE: key: message` instead of stopping
at the first. The rules file and the rule-test files both read this way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


class RulesError(Exception):
    """The file did not load; `problems` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.key)))
        super().__init__("\n".join(map(str, self.problems)))


def _snippet(text: str, line: int, column: int) -> str:
    """The source line (0-based `line`) and a caret under `column`, indented under the problem."""
    lines = text.splitlines()
    source = lines[line] if line < len(lines) else ""
    under = "".join("\t" if c == "\t" else " " for c in source[:column])  # tabs line up
    return f"\n    {source}\n    {under}^"


def yaml_problem(error: yaml.YAMLError, text: str, path: str) -> Problem:
    """PyYAML's error as `PATH:LINE: (yaml): what (at column C)`, then the line and a caret.

    PyYAML's own text names a `<unicode string>` and repeats the marks; this keeps what a
    person needs: the problem, where it is, and what it was inside of.
    """
    mark = getattr(error, "problem_mark", None)
    if not isinstance(error, yaml.MarkedYAMLError) or mark is None:
        return Problem(path, 1, "(yaml)", str(error))
    message = f"{error.problem or 'not valid YAML'} (at column {mark.column + 1})"
    context_mark = error.context_mark
    if error.context:
        message += f", {error.context}"
        if context_mark is not None and context_mark.line != mark.line:
            message += f" that starts at line {context_mark.line + 1}"
    if error.note:
        message += f"; {error.note}"
    return Problem(path, mark.line + 1, "(yaml)", message + _snippet(text, mark.line, mark.column))


def compose_document(text: str, path: str) -> yaml.Node:
    """The single YAML document in `text`, or RulesError naming the YAML problem's line."""
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise RulesError([yaml_problem(error, text, path)]) from None
    if len(documents) != 1 or documents[0] is None:
        raise RulesError([Problem(path, 1, "(file)", "must hold exactly one YAML document")])
    document: yaml.Node = documents[0]
    return document


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class NodeReader:
    """Reads nodes against a schema; each method reports what is wrong and goes on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, line_of(node), key, message))

    def raise_problems(self) -> None:
        if self.problems:
            raise RulesError(self.problems)

    def entries(
        self, node: yaml.Node, key: str, accepted: tuple[str, ...] | None = None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key -> (key node, value node); non-string, unknown and duplicate keys reported
        (PyYAML would silently keep the last of two)."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, key, "must be a mapping")
            return {}
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            at = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                self.problem(key_node, key, "keys must be plain strings")
            elif name in entries:
                self.problem(key_node, at, "duplicate key (YAML would silently keep the last)")
            elif accepted is not None and name not in accepted:
                self.problem(key_node, at, f"unknown key; accepted: {', '.join(accepted)}")
            else:
                entries[name] = (key_node, value_node)
        return entries

    def mapping(
        self, node: yaml.Node, key: str, accepted: tuple[str, ...] | None = None
    ) -> dict[str, yaml.Node]:
        """Key -> value node, as `entries` checks them."""
        return {name: value for name, (_, value) in self.entries(node, key, accepted).items()}

    def sequence(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, key, "must be a list")
            return []
        items: list[yaml.Node] = node.value
        return items

    def scalar(self, node: yaml.Node, key: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, key, "must be a single value")
            return None
        return self._constructor.construct_object(node)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            self.problem(node, key, "must be true or false")
            return False
        return value

    def integer(self, node: yaml.Node, key: str, minimum: int = 1) -> int:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(node, key, f"must be a whole number of at least {minimum}")
            return minimum
        return value

    def data(self, node: yaml.Node) -> Any:
        """Plain data (strings, numbers, lists, mappings) as a token's claims would carry it."""
        return self._constructor.construct_object(node, deep=True)
