"""The commands as ops run them: check, explain and token through the real console entry."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from gateway import __version__
from gateway.cli import build_parser, main
from tests.factories import SECRET, SHIPPED_RULES


def test_check_on_shipped_rules_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(SHIPPED_RULES)], env={}) == 0
    assert "ok: 5 shapes" in capsys.readouterr().out


def test_check_prints_path_line_key_per_problem_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text(SHIPPED_RULES.read_text().replace(":tenant AND assigned_to", ":tenat AND x"))
    assert main(["check", str(rules)], env={}) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out
    assert all(line.startswith(f"{rules}:") for line in out)
    assert "shapes.tasks.allow.member.where: unknown placeholder :tenat" in out[0]


def test_check_explains_that_a_user_only_where_follows_the_user_across_tenants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "user-only.yaml"
    shipped = SHIPPED_RULES.read_text()
    rules.write_text(
        shipped.replace('"tenant_id = :tenant AND user_id = :user"', '"user_id = :user"')
    )
    assert main(["check", str(rules)], env={}) == 1
    (line,) = capsys.readouterr().out.strip().splitlines()
    where_line = rules.read_text().splitlines().index('    where: "user_id = :user"') + 1
    assert line.startswith(
        f"{rules}:{where_line}: shapes.drafts.where: role 'admin', 'manager', 'member': "
    )
    assert "pins :user but not :tenant" in line
    assert "`scope: user` if these rows belong to the person rather than to a tenant" in line
    rules.write_text(
        rules.read_text().replace('    allow: "*"\n', '    allow: "*"\n    scope: user\n')
    )
    assert main(["check", str(rules)], env={}) == 0
    args = ["explain", "drafts", "--user", "alice", "--tenant", "acme", "--role", "member"]
    assert main([*args, "--rules", str(rules)], env={}) == 0
    assert "scope    user: these rows follow the user across tenants" in capsys.readouterr().out


def test_explain_shows_the_upstream_request_with_secret_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["explain", "tasks", "--user", "alice", "--tenant", "acme", "--role", "member"]
    args += ["--rules", str(SHIPPED_RULES), "--where", "status = $1", "--param", "1=open"]
    code = main(args, env={"ELECTRIC_SECRET": "topsecret"})
    out = capsys.readouterr().out
    assert code == 0
    assert "secret=REDACTED" in out
    assert "topsecret" not in out
    assert "((tenant_id = $1) AND (assigned_to = $2)) AND (status = $3)" in out
    assert '"acme"  (:tenant)' in out


def test_explain_shows_the_local_ttl_the_answers_carry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text().replace(
        "    table: public.drafts\n", "    table: public.drafts\n    local_ttl: 12h\n"
    ))  # fmt: skip
    args = ["explain", "drafts", "--user", "alice", "--tenant", "acme", "--role", "member"]
    assert main([*args, "--rules", str(rules)], env={}) == 0
    assert "  local_ttl 43200 s  (sent as Shape-Gateway-Local-TTL)" in capsys.readouterr().out
    assert main([*args, "--rules", str(SHIPPED_RULES)], env={}) == 0
    assert "local_ttl" not in capsys.readouterr().out


def test_explain_shows_the_refusal_and_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "tasks", "--user", "a", "--tenant", "acme", "--role", "member"]
    code = main([*args, "--rules", str(SHIPPED_RULES), "--where", "tenant_id = 'globex'"], env={})
    out = capsys.readouterr().out
    assert code == 1
    assert "refused: 400 invalid_where" in out


def test_token_prints_a_jwt_the_gateway_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["token", "--user", "alice", "--tenant", "acme", "--role", "member", "--ttl", "60"]
    code = main([*args, "--rules", str(SHIPPED_RULES), "--claim", 'tenants={"acme": "member"}'],
                env={"JWT_SECRET": SECRET})  # fmt: skip
    assert code == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["tid"], claims["role"]) == ("alice", "acme", "member")
    assert claims["tenants"] == {"acme": "member"}
    assert claims["exp"] - claims["iat"] == 60


def test_token_without_secret_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "a", "--tenant", "t", "--role", "r"], env={}) == 2
    assert "JWT_SECRET is not set" in capsys.readouterr().err


def test_bad_settings_are_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(SHIPPED_RULES)], env={"GATEWAY_PORT": "x"}) == 2
    assert "GATEWAY_PORT" in capsys.readouterr().err


def test_python_dash_m_gateway_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(SHIPPED_RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout


def test_every_command_and_every_flag_says_what_it_does() -> None:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"serve", "check", "explain", "test", "diff", "token", "revoke"}
    summaries = {action.dest: action.help for action in commands._choices_actions}
    silent = []
    for name, command in commands.choices.items():
        if not summaries.get(name):
            silent.append(f"{name}: no line in `shape-gateway --help`")
        if not command.description:
            silent.append(f"{name}: no description in `shape-gateway {name} --help`")
        silent += [
            f"{name} {'/'.join(action.option_strings) or action.dest}: no help"
            for action in command._actions
            if not action.help
        ]
    assert silent == []


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"], env={})
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"shape-gateway {__version__}\n"
