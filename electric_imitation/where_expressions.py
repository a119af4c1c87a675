"""The node-by-node walk of Electric's where parser (`node_to_ast/4`), over libpg_query's tree.

Children are typed before their parent, left to right, and the first failure ends the walk,
as in Electric. A string literal, NULL or `$n` is "unknown" until a typed context (an operator,
a function, AND/OR) gives it a type; its text must then read as that type. Locations are byte
offsets in `SELECT 1 WHERE <where>`, reported relative to the clause.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from electric_imitation.versions import ServerVersion
from electric_imitation.where_values import (
    Value,
    WhereCrashError,
    WhereRefusalError,
    check_subselect,
    identifier,
    quoted,
)
from gateway.sql.electric.casts import CAST_TARGETS, cast_allowed
from gateway.sql.electric.literals import electric_reads
from gateway.sql.electric.overloads import TypeRules
from gateway.sql.electric.types import UNKNOWN, family, is_array

_PREFIX_LENGTH: Final = len("SELECT 1 WHERE ")
_BOOL_TESTS: Final = frozenset({"IS_TRUE", "IS_NOT_TRUE", "IS_FALSE", "IS_NOT_FALSE"}) | {
    "IS_UNKNOWN",
    "IS_NOT_UNKNOWN",
}
_AGGREGATE_FLAGS: Final = ("agg_star", "agg_distinct", "over", "agg_filter", "agg_order")


class ExpressionTyper:
    """Types one where clause; collects which `$n` were used and which got a type."""

    def __init__(
        self,
        columns: Mapping[str, str],
        params: Mapping[str, str],
        server: ServerVersion,
        *,
        subqueries: bool,
    ) -> None:
        self._columns = columns
        self._params = params
        self._server = server
        self._rules = TypeRules(modern=server.knows_1_7_functions)
        self._subqueries = subqueries
        self.used: set[int] = set()
        self.resolved: set[int] = set()
        self._visitors: dict[str, Callable[[dict[str, Any]], Value]] = {
            "A_Const": self._const,
            "ColumnRef": self._column,
            "ParamRef": self._param,
            "BoolExpr": self._bool,
            "TypeCast": self._cast,
            "FuncCall": self._function,
            "A_Expr": self._expression,
            "NullTest": self._null_test,
            "BooleanTest": self._bool_test,
            "A_ArrayExpr": self._array,
            "A_Indirection": self._index,
            "SubLink": self._sublink,
        }
        if server.knows_1_7_functions:
            self._visitors.update(
                CoalesceExpr=self._variadic, MinMaxExpr=self._variadic, RowExpr=self._row
            )

    def visit(self, node: dict[str, Any]) -> Value:
        [(kind, body)] = node.items()
        visitor = self._visitors.get(kind)
        if visitor is None:
            raise self._error(body.get("location", 0), f"{kind} is not supported in this context")
        return visitor(body)

    # --- leaves ---------------------------------------------------------------------------

    def _const(self, body: dict[str, Any]) -> Value:
        location = body.get("location", 0)
        if body.get("isnull"):
            return Value(UNKNOWN, "unknown", location)
        if "sval" in body:
            return Value(UNKNOWN, "unknown", location, literal=body["sval"].get("sval", ""))
        if "ival" in body:
            number = body["ival"].get("ival", 0)
            return Value("int4" if -(2**31) <= number < 2**31 else "int8", "const", location)
        if "fval" in body:
            return Value("numeric", "const", location)
        if "boolval" in body:
            return Value("bool", "const", location)
        raise self._error(location, "BitString values are not supported")

    def _column(self, body: dict[str, Any]) -> Value:
        fields = body.get("fields", [])
        for item in fields:
            if "String" not in item:
                self.visit(item)  # `*`: A_Star is not supported
        path = [item["String"]["sval"] for item in fields]
        name = identifier(path)
        if len(path) == 1 and path[0] in self._columns:
            return Value(self._columns[path[0]], "ref", body.get("location", 0), name=name)
        raise self._error(body.get("location", 0), f"unknown reference {name}")

    def _param(self, body: dict[str, Any]) -> Value:
        number, location = body.get("number", 0), body.get("location", 0)
        value = self._params.get(str(number))
        if value is None:
            raise self._error(location, f"parameter ${number} was not provided")
        self.used.add(number)
        return Value(UNKNOWN, "unknown", location, literal=value, param=number)

    # --- boolean structure ----------------------------------------------------------------

    def _bool(self, body: dict[str, Any]) -> Value:
        args = [self._coerce(self.visit(arg), "bool") for arg in body.get("args", [])]
        for arg in args:
            if arg.type == "bool":
                continue
            if arg.kind == "const":
                # `internal_node_to_error/1` has no clause for a constant: the parser crashes.
                raise WhereCrashError(
                    "** (FunctionClauseError) no function clause matching in "
                    "Electric.Replication.Eval.Parser.internal_node_to_error/1"
                )
            what = "reference" if arg.kind == "ref" else "function"
            verb = "of type" if arg.kind == "ref" else "returning"
            raise self._error(
                arg.location, f"{what} {arg.name} {verb} {arg.type} is not castable to bool"
            )
        operator = body.get("boolop", "")
        if operator == "NOT_EXPR" and self._server.crashes_on_not:
            raise WhereCrashError(
                "** (FunctionClauseError) no function clause matching in "
                "Electric.Replication.Eval.Parser.to_binary_operators/1"
            )
        name = operator.removesuffix("_EXPR").lower()
        return Value("bool", "func", body.get("location", 0), name=name)

    def _null_test(self, body: dict[str, Any]) -> Value:
        self._infer(self.visit(body["arg"]))
        return Value("bool", "func", body.get("location", 0), name=body.get("nulltesttype", ""))

    def _bool_test(self, body: dict[str, Any]) -> Value:
        arg = self._coerce(self.visit(body["arg"]), "bool")
        test = body.get("booltesttype", "IS_TRUE")
        if arg.type != "bool" or test not in _BOOL_TESTS:
            words = test.replace("_", " ")
            raise self._error(body["location"], f"argument of {words} must be bool, not {arg.type}")
        return Value("bool", "func", body.get("location", 0), name=test)

    # --- casts, functions, operators ------------------------------------------------------

    def _cast(self, body: dict[str, Any]) -> Value:
        arg = self.visit(body["arg"])
        type_name = body["typeName"]
        names = [item["String"]["sval"] for item in type_name.get("names", [])]
        base = names[-1] if len(names) == 1 or names[0] == "pg_catalog" else ""
        if base not in CAST_TARGETS:
            location = type_name.get("location", 0)
            raise self._error(location, f"unsupported type {identifier(names)}")
        target = base + ("[]" if type_name.get("arrayBounds") else "")
        if arg.kind == "unknown":
            arg = self._infer(arg)
            if arg.literal is not None and not electric_reads(arg.literal, target):
                message = f'could not cast value "{arg.literal}" from text to {target}'
                raise self._error(arg.location, message)
        elif arg.type != target and not cast_allowed(arg.type, target):
            raise self._error(arg.location, f"unknown cast from type {arg.type} to type {target}")
        return Value(target, "func", arg.location, name=f"{arg.type}_to_{target}")

    def _function(self, body: dict[str, Any]) -> Value:
        location = body.get("location", 0)
        args = [self.visit(arg) for arg in body.get("args", [])]
        if any(body.get(flag) for flag in _AGGREGATE_FLAGS):
            raise self._error(location, "aggregation is not supported in this context")
        name = identifier([item["String"]["sval"] for item in body["funcname"]])
        arities = self._rules.functions.get(name, frozenset())
        if arities is not None and len(args) not in arities:
            raise self._error(location, f"unknown or unsupported function {name}/{len(args)}")
        types = [arg.type for arg in args]
        if not self._rules.function_accepts(name, types):
            listed = ", ".join(types)
            raise self._error(
                location, f"Could not select a function overload for {name}({listed})"
            )
        takes_text = name not in ("coalesce", "greatest", "least")
        for arg in args:
            self._coerce(arg, "text") if takes_text else self._infer(arg)
        return Value(self._rules.function_result(name, types), "func", location, name=name)

    def _expression(self, body: dict[str, Any]) -> Value:
        kind, location = body.get("kind", ""), body.get("location", 0)
        names = [item["String"]["sval"] for item in body.get("name", [])]
        op = names[-1] if names else ""
        left = self.visit(body["lexpr"]) if "lexpr" in body else None
        if kind == "AEXPR_IN":
            assert left is not None
            for item in body["rexpr"]["List"]["items"]:
                self._operator("=", left, self.visit(item), location)
            return Value("bool", "func", location, name=identifier(names))
        if "BETWEEN" in kind:
            assert left is not None
            low, high = (self.visit(item) for item in body["rexpr"]["List"]["items"])
            self._operator("<=", low, left, location)
            self._operator("<=", left, high, location)
            return Value("bool", "func", location, name="between")
        right = self.visit(body["rexpr"])
        if kind == "AEXPR_OP" and left is None:
            return self._unary(op, right, location)
        if kind in ("AEXPR_OP", "AEXPR_LIKE", "AEXPR_ILIKE"):
            assert left is not None
            return self._operator(op, left, right, location)
        if kind in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT"):
            assert left is not None
            self._operator("<>", left, right, location)
            return Value("bool", "func", location, name=kind.lower())
        if kind in ("AEXPR_OP_ANY", "AEXPR_OP_ALL"):
            assert left is not None
            return self._any(op, left, right, location)
        message = f"expression {identifier(names)} of :{kind} is not currently supported"
        raise self._error(location, message)

    def _operator(self, op: str, left: Value, right: Value, location: int) -> Value:
        if op not in self._rules.binary:
            raise self._error(location, f"unknown binary operator {quoted(op)}")
        picked = self._rules.binary_result(op, left.type, right.type)
        if picked is None:
            raise self._error(location, "Could not select an operator overload")
        left_type, right_type, result = picked
        self._coerce(left, left_type)
        self._coerce(right, right_type)
        return Value(result, "func", location, name=quoted(op))

    def _unary(self, op: str, arg: Value, location: int) -> Value:
        if op not in self._rules.unary:
            raise self._error(location, f"unknown unary operator {quoted(op)}")
        result = self._rules.unary_result(op, arg.type)
        if result is None:
            raise self._error(location, "Could not select an operator overload")
        self._coerce(arg, result)
        return Value(result, "func", location, name=quoted(op))

    def _any(self, op: str, left: Value, right: Value, location: int) -> Value:
        if right.kind != "unknown" and not is_array(right.type):
            raise self._error(right.location, "argument of ANY must be an array")
        element = right.type.removesuffix("[]") if right.kind != "unknown" else UNKNOWN
        known = op in self._rules.binary
        picked = self._rules.binary_result(op, left.type, element) if known else None
        if picked is None:
            raise self._error(location, "Could not select an operator overload")
        if picked[2] != "bool":
            raise self._error(location, "ANY/ALL requires operator that returns bool")
        self._coerce(left, picked[0])
        if right.kind == "unknown":
            self._resolve(right)  # an array literal: Electric parses it, we let PostgreSQL
        return Value("bool", "func", location, name=quoted(op))

    # --- arrays, subqueries, 1.7's extras -------------------------------------------------

    def _array(self, body: dict[str, Any]) -> Value:
        location = body.get("location", 0)
        elements = [self.visit(item) for item in body.get("elements", [])]
        element = self._union(elements, location, "ARRAY")
        return Value(element + "[]", "func", location, name="array")

    def _index(self, body: dict[str, Any]) -> Value:
        arg = self.visit(body["arg"])
        if not is_array(arg.type):
            raise self._error(0, "A_Indirection is not supported in this context")
        for item in body.get("indirection", []):
            indices = item.get("A_Indices")
            if indices is None:
                raise self._error(0, f"{next(iter(item))} is not supported in this context")
            for bound in ("lidx", "uidx"):
                if bound in indices:
                    self._coerce(self.visit(indices[bound]), "int8")
        return Value(arg.type.removesuffix("[]"), "func", arg.location, name="index_access")

    def _sublink(self, body: dict[str, Any]) -> Value:
        location = body.get("location", 0)
        if not self._subqueries:
            raise self._error(location, "subqueries are not supported")
        test = self.visit(body["testexpr"]) if "testexpr" in body else None
        if body.get("subLinkType") != "ANY_SUBLINK" or body.get("operName") or test is None:
            raise self._error(
                location, "only `value IN (SELECT ...)` sublinks are supported right now"
            )
        if test.kind != "ref" and test.type != "row":
            message = "currently, left side of `IN (SELECT ...)` can only be a column reference"
            raise self._error(location, message)
        check_subselect(body["subselect"]["SelectStmt"])
        return Value("bool", "func", location, name="sublink_membership_check")

    def _variadic(self, body: dict[str, Any]) -> Value:
        location = body.get("location", 0)
        args = [self.visit(arg) for arg in body.get("args", [])]
        return Value(self._union(args, location, "COALESCE"), "func", location, name="coalesce")

    def _row(self, body: dict[str, Any]) -> Value:
        for arg in body.get("args", []):
            self._infer(self.visit(arg))
        return Value("row", "func", body.get("location", 0), name="row")

    # --- typing helpers -------------------------------------------------------------------

    def _union(self, values: list[Value], location: int, what: str) -> str:
        known = [value.type for value in values if value.kind != "unknown"]
        chosen = known[0] if known else "text"
        for other in known[1:]:
            if family(other) != family(chosen) or (
                family(chosen) not in ("number", "text") and other != chosen
            ):
                raise self._error(location, f"{what} types {chosen} and {other} cannot be matched")
        for value in values:
            self._coerce(value, chosen)
        return chosen

    def _coerce(self, value: Value, target: str) -> Value:
        """`cast_unknowns/3`: an unknown takes `target`, and its text must read as one."""
        if value.kind != "unknown":
            return value
        if value.literal is not None and not electric_reads(value.literal, target):
            message = f"invalid syntax for type {target}: {value.literal}"
            raise self._error(value.location, message)
        self._resolve(value)
        return replace(value, type=target, kind="const")

    def _infer(self, value: Value) -> Value:
        """`infer_unknown/1`: an unknown becomes text; before 1.3 it forgot its `$n`."""
        if value.kind != "unknown":
            return value
        if not self._server.crashes_on_param_cast:
            self._resolve(value)
        return replace(value, type="text" if value.literal is not None else UNKNOWN, kind="const")

    def _resolve(self, value: Value) -> None:
        if value.param is not None:
            self.resolved.add(value.param)

    @staticmethod
    def _error(location: int, message: str) -> WhereRefusalError:
        return WhereRefusalError(f"At location {max(location - _PREFIX_LENGTH, 0)}: {message}")
