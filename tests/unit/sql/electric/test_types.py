"""Types as Electric's where parser judges them (gateway/sql/electric/, through check_subset).

What real Electric 1.0.10 and 1.7.12 refused with their own 400 (a date alone against a
timestamptz, `'2024-03-01'::timestamp`, `t_ts::date`, a bare non-boolean column) is refused
here first, naming the construct; what they accept passes.
"""

from __future__ import annotations

import pytest

from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.subset import check_subset

TYPES = {
    "t_ts": "timestamptz",
    "t_stamp": "timestamp",
    "t_date": "date",
    "t_time": "time",
    "t_int": "int4",
    "t_big": "int8",
    "t_small": "int2",
    "t_float": "float8",
    "t_num": "numeric",
    "t_text": "text",
    "t_code": "varchar",
    "t_bool": "bool",
    "t_uuid": "uuid",
    "t_span": "interval",
}
COLUMNS = frozenset(TYPES) | {"loose"}  # `loose`: in client_where, its type not declared


def judge(where: str) -> dict[int, str]:
    return check_subset(parse_expression(where), COLUMNS, TYPES).params


@pytest.mark.parametrize(
    ("where", "says"),
    [  # each answered 400 by real Electric 1.0.10 and 1.7.12 (electric_imitation/versions.py)
        ("t_ts > '2024-03-01'", "'2024-03-01' compared with column t_ts (timestamptz)"),
        ("t_ts BETWEEN '2024-03-01' AND '2024-04-01'", "a date alone is refused"),
        ("t_ts NOT BETWEEN '2024-03-01 00:00:00Z' AND '2024-04-01'", "'2024-04-01'"),
        ("'2024-03-01'::timestamp < t_stamp", "cast to timestamp: '2024-03-01' is not a timestamp"),
        ("t_ts::date = '2024-03-01'", "column t_ts::date: Electric has no cast from timestamptz"),
        ("t_int", "column t_int is int4, not a boolean"),
        ("t_text AND t_bool", "column t_text is text, not a boolean"),
        ("t_int IS TRUE", "cannot be used with IS TRUE"),
        # The same rules, further: Electric's parsers and overloads.
        ("t_ts > '2024-03-01 10:00:00'", "is not a timestamptz"),  # no offset
        ("t_stamp = '2024-03-01'", "is not a timestamp"),
        ("t_ts::text = 'x'", "no cast from timestamptz to text"),  # no timestamptzout
        ("t_float::int4 = 1", "no cast from float8 to int4"),
        ("t_code::int4 = 1", "no cast from varchar to int4"),
        ("5::int2 = t_small", "no cast from int4 to int2"),
        ("'x'::int4 = t_int", "'x' is not a whole number that fits int4"),
        ("t_int = 'abc'", "'abc' is not a whole number that fits int4"),
        ("t_small = '40000'", "int2"),
        ("t_bool = 'yes'", "'yes' is not a bool: write true or false"),
        ("t_uuid = 'not-a-uuid'", "is not a uuid"),
        ("t_date = '2024-02-30'", "is not a date"),
        ("t_text = 5", "column t_text (text) = 5 (int4): Electric has no = for these types"),
        ("t_date > t_ts", "Electric has no > for these types"),  # no date -> timestamptz
        ("t_bool < true", "no < for these types"),
        ("t_span > '1 hour'", "no > for these types"),  # interval has = and <> only
        ("t_int LIKE '1%'", "no LIKE for these types"),
        ("t_int IS DISTINCT FROM 'x'", "'x' compared with column t_int"),
        ("t_int IN (1, 'two')", "'two' compared with column t_int"),
        ("t_int = $1 AND t_text = $1", "$1 is read as int4 and as text"),
        # make_const/3 reads these with String.to_float/1, which raises: a 500, not a 400
        ("t_big = 3000000000", "Erlang's float parser"),
        ("t_float > 1e5", "write it like 0.5 or 3000000000.0, or quote it ('1e5')"),
        ("t_float > .5", "the number .5"),
    ],
)
def test_what_electric_refuses_for_its_types_is_refused_naming_the_construct(
    where: str, says: str
) -> None:
    with pytest.raises(ExpressionError) as refused:
        judge(where)
    assert says in refused.value.message


@pytest.mark.parametrize(
    "where",
    [
        "t_ts > '2024-03-01T00:00:00Z' AND t_ts < '2024-03-01 10:00:00.123+02:00'",
        "t_ts BETWEEN '2024-03-01 00:00:00+0100' AND 'epoch'",
        "t_stamp > '2024-03-01 10:00:00' AND t_stamp < '2024-03-01T10:00:00Z'",
        "t_date > '2024-03-01' AND t_date = ' 2024-03-01 '",
        "t_date < t_stamp",  # date -> timestamp is implicit
        "t_time > '10:00:00' AND t_time < 'T23:59:59.5'",
        "'2024-03-01'::date = t_date AND '2024-03-01 10:00:00'::timestamp = t_stamp",
        "t_int = '5' AND t_big > 5 AND t_small = 1 AND t_int = t_big AND t_int < 1.5",
        "t_float > 1 AND t_num = 2.5 AND t_float = t_num AND t_float = '1e5' AND t_num < -1.5e3",
        "t_big = '3000000000' AND t_big > 3000000000.0",
        "t_text = 'x' AND t_code = 'y' AND t_code = t_text AND t_code LIKE 'a%'",
        "t_bool AND t_bool = 't' AND t_bool IS NOT FALSE AND (t_int = 1) IS TRUE",
        "t_uuid = '550E8400-e29b-41d4-a716-446655440000'",
        "t_span = '1 hour' AND t_span <> 'P1D'",
        "t_int::text = '5' AND t_date::text LIKE '2024%' AND t_bool::int4 = 1 AND t_int::bool",
        "t_int::int8 = t_big AND t_code::text = 'x' AND t_text::varchar = 'x'",
        "t_int IS DISTINCT FROM 5 AND t_ts IS NOT DISTINCT FROM NULL",
        "t_text IS NULL AND NULL::int4 IS NULL",
        "loose > '2024-03-01' AND loose AND loose::date = '2024-03-01'",  # form only
        "'a' = 'b'",
    ],
)
def test_what_electric_accepts_passes(where: str) -> None:
    judge(where)


def test_each_parameter_gets_the_type_electric_reads_it_as() -> None:
    assert judge("t_ts > $1 AND t_int IN ($2, $3) AND loose = $4 AND t_code = $5") == {
        1: "timestamptz",
        2: "int4",
        3: "int4",
        5: "text",
    }


def test_undeclared_columns_are_judged_by_form_alone_but_literal_casts_always() -> None:
    check_subset(parse_expression("x::date = '2024-03-01' AND y > '2024-03-01'"))
    with pytest.raises(ExpressionError) as refused:
        check_subset(parse_expression("x::timestamptz > '2024-03-01'"))
    assert "is not a timestamptz Electric reads" in refused.value.message
