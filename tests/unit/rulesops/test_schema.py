"""The rules against the real schema: a typo'd column or table, a where on a column that does not
exist, a client_where column the table lacks are each a problem with its line; rules that match
the schema are clean; per-tenant tables are checked on a tenant's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.rulesops.proof import ProofUnavailableError
from gateway.rulesops.schema import check_schema
from tests.factories import make_rules
from tests.unit.cli.test_serve_process import ENV, run_serve
from tests.unit.rulesops.conftest import World

pytestmark = pytest.mark.postgres


def test_rules_that_match_the_schema_have_no_problem(world: World) -> None:
    rules = world.rules("tenant_id = :tenant AND assigned_to = :user")
    report = check_schema(rules, world.url)
    assert report.problems == []
    assert report.notes == []
    assert report.checked == 2  # tasks, and documents on the first tenant's schema


def test_a_typod_column_and_a_where_on_a_missing_column_are_each_reported(world: World) -> None:
    rules = world.rules(
        "tenant_id = :tenant AND asigned_to = :user",
        columns="[id, tenant_id, stauts, status, project_id]",
    )
    problems = [str(p) for p in check_schema(rules, world.url).problems]
    tasks = f"{world.schema}.tasks"
    assert problems == [
        f"rules.yaml:4: shapes.tasks: role member: column stauts is not in {tasks}",
        f"rules.yaml:4: shapes.tasks: role member: where 'tenant_id = :tenant AND asigned_to = "
        f':user\' fails on {tasks}: column "asigned_to" does not exist',
    ]


def test_a_missing_table_and_client_where_column_are_reported(world: World) -> None:
    rules = make_rules(f"""\
        version: 1
        roles: [admin]
        shapes:
          tasks:
            table: {world.schema}.tasks
            where: "tenant_id = :tenant"
            client_where: [status, priority]
            allow: [admin]
          gone:
            table: {world.schema}.taks
            where: "tenant_id = :tenant"
            allow: [admin]
        """)
    problems = [str(p) for p in check_schema(rules, world.url).problems]
    assert problems == [
        f"rules.yaml:4: shapes.tasks: client_where: column priority is not in {world.schema}.tasks",
        f"rules.yaml:9: shapes.gone: table {world.schema}.taks does not exist (or this database "
        "user cannot see it)",
    ]


def test_a_per_tenant_table_with_no_tenant_yet_is_a_note_not_a_problem(world: World) -> None:
    rules = make_rules("""\
        version: 1
        roles: [admin]
        shapes:
          documents: {table: "nobody_{tenant}.documents", allow: [admin]}
        """)
    report = check_schema(rules, world.url)
    assert report.problems == []
    (note,) = report.notes
    assert note == (
        "rules.yaml:4: shapes.documents: no table matches nobody_{tenant}.documents yet; "
        "not checked"
    )


def test_an_unreachable_database_is_said_in_one_line() -> None:
    with pytest.raises(ProofUnavailableError) as caught:
        check_schema(make_rules(), "postgresql://nobody@127.0.0.1:9/none")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("cannot connect to the database:")


TYPO_RULES = """\
version: 1
roles: [admin]
shapes:
  tasks:
    table: {schema}.tasks
    where: "tenant_id = :tenant"
    columns: [id, tenant_id, stauts]
    allow: [admin]
"""


def test_check_with_a_database_reports_the_schema_problems_and_exits_one(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TYPO_RULES.format(schema=world.schema))
    assert main(["check", str(rules), "--database", world.url], env={}) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{rules}:4: shapes.tasks: role admin: column stauts is not in {world.schema}.tasks"
    ]
    rules.write_text(TYPO_RULES.format(schema=world.schema).replace("stauts", "status"))
    assert main(["check", str(rules)], env={"GATEWAY_CHECK_DATABASE": world.url}) == 0
    assert "1 checked against the database" in capsys.readouterr().out


async def test_serve_asked_to_check_the_database_refuses_rules_the_schema_contradicts(
    world: World, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TYPO_RULES.format(schema=world.schema))
    process = await run_serve(
        "--rules", str(rules), env={**ENV, "GATEWAY_CHECK_DATABASE": world.url}
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        f"serve: the rules in {rules} do not load:",
        f"{rules}:4: shapes.tasks: role admin: column stauts is not in {world.schema}.tasks",
    ]
