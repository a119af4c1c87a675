"""Hypothesis strategies: where text in the accepted subset, in every spelling a client may use.

Over the table `TABLE_SQL` creates: each column typed, with NULLs, so three-valued logic is
exercised. Spellings vary on purpose (`CAST(x AS int8)` and `x::bigint`, `!=`, `NOT (...)`,
stray parentheses) since the gateway must forward one form whatever it was given.
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

COLUMNS = {
    "status": ["'open'", "'done'", "'it''s'", "'Open'"],
    "project_id": ["0", "1", "-1", "2"],
    "score": ["0.5", "-1.5", "2"],
    "done": ["true", "false"],
    "created_at": ["'2024-01-01T00:00:00Z'", "'2024-06-01 12:00:00+02'"],
}
TABLE_SQL = (
    "CREATE TABLE {} (id int PRIMARY KEY, status text, project_id int4, score float8, "
    "done bool, created_at timestamptz)"
)
ROWS = [
    (i, status, project, *rest)
    for i, (status, project, rest) in enumerate(
        itertools.product(
            ("open", "done", "it's", None),
            (0, 1, -1, None),
            ((0.5, True, "2024-01-01"), (None, None, None), (2.0, False, "2025-01-01")),
        )
    )
]  # every value of each column beside every other, NULLs included

_OPERATORS = st.sampled_from(["=", "<>", "!=", "<", ">", "<=", ">="])


@st.composite
def _atom(draw: st.DrawFn) -> str:
    column = draw(st.sampled_from(sorted(COLUMNS)))
    value = st.sampled_from(COLUMNS[column])
    form = draw(st.integers(0, 10))
    if form == 0:
        return f"{column} IN ({', '.join(draw(st.lists(value, min_size=1, max_size=3)))})"
    if form == 1:
        return f"{column} NOT IN ({draw(value)}, {draw(value)})"
    if form == 2 and column != "done":
        low, high = draw(value), draw(value)
        return f"{column} {draw(st.sampled_from(['BETWEEN', 'NOT BETWEEN']))} {low} AND {high}"
    if form == 3:
        return f"{column} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    if form == 4:
        words = st.sampled_from(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"])
        pattern = draw(st.sampled_from(["'o%'", "'%e'", "'it%'"]))
        return f"status {draw(words)} {pattern}"
    if form == 5:
        return draw(st.sampled_from(["done", "true", "false", "done::bool", "(done)"]))
    if form == 6:
        return draw(
            st.sampled_from(
                [
                    "project_id::text = '1'",
                    "CAST(project_id AS bigint) > -1",
                    "'5'::int4 > project_id",
                    "status::varchar = 'open'",
                    "created_at::date = '2024-01-01'",
                    "score::integer >= 1",
                    "(-1.5)::float8 < score",
                ]
            )
        )
    if form == 7:
        test = draw(st.sampled_from(["TRUE", "NOT TRUE", "FALSE", "NOT FALSE", "UNKNOWN"]))
        subject = draw(st.sampled_from(["done", f"({column} = {draw(value)})"]))
        return f"{subject} IS {test}"
    if form == 8:
        words = draw(st.sampled_from(["IS DISTINCT FROM", "IS NOT DISTINCT FROM"]))
        return f"{column} {words} {draw(value)}"
    left, right = column, draw(value)
    if draw(st.booleans()):
        left, right = right, left
    return f"{left} {draw(_OPERATORS)} {right}"


def conditions(max_leaves: int = 8) -> st.SearchStrategy[str]:
    """Where text over the columns of `COLUMNS`, nested with AND, OR, NOT and parentheses."""

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        joined = st.tuples(inner, st.sampled_from([" AND ", " OR "]), inner).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"
        )
        bare = st.tuples(inner, st.sampled_from([" AND ", " OR "]), inner).map("".join)
        negated = inner.map(lambda text: f"NOT ({text})")
        return st.one_of(joined, bare, negated, inner.map(lambda text: f"(({text}))"))

    return st.recursive(_atom(), extend, max_leaves=max_leaves)
