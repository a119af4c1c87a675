"""tests/unit/ mirrors gateway/: every module has a test file at the same path
(`gateway/web/routes/shape.py` -> `tests/unit/web/routes/test_shape.py`, or several named
`test_shape_<aspect>.py`), and every test file here names a module, so a renamed or moved module
cannot leave its tests behind (as mitmproxy's test/filename_matching.py checks its tree).

A module proved only from outside (through the whole app, a real process, or the functional
suite) is listed in EXEMPT with where it is proved; an entry that goes stale fails too.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
UNIT = ROOT / "tests" / "unit"

# Module (relative to gateway/) -> why it has no mirror, and where it is proved instead.
APP = "through the assembled app: tests/unit/web/test_app_*.py"
EXEMPT: dict[str, str] = {
    "audit/writer.py": f"the line sink and sampling, {APP} (broken sink: test_app_pipeline)",
    "cli/check.py": "the command as ops run it: tests/unit/test_cli.py",
    "cli/dev_token.py": "the command as ops run it: tests/unit/test_cli.py",
    "cli/inputs.py": "shared by every command: tests/unit/test_cli.py, cli/test_diff.py",
    "cli/preflight.py": "serve's and check's start-up checks: tests/unit/cli/test_serve_process.py",
    "cli/revoke.py": "needs Redis and a gateway: tests/functional/test_revoke_cli.py",
    "redis/node.py": "real failovers: tests/functional/test_redis_failover.py, _hung_master",
    "revocation/enforcer.py": "tests/functional/test_revocation_functional.py, _ends",
    "revocation/feed.py": "the feed over HTTP: tests/functional/test_feed_admission.py",
    "revocation/publisher.py": "tests/functional/test_revocation_outcome.py (real Redis)",
    "revocation/restore.py": "tests/functional/test_revocation_restore.py (real Redis)",
    "server/serve.py": "a real process: tests/unit/cli/test_serve_process.py",
    "upstream/client.py": "against the imitation: tests/functional/test_upstream_failures.py",
    "web/keys.py": "the app's typed keys: no behaviour of its own",
    "web/sse.py": "the feed over HTTP: tests/functional/test_feed_admission.py, _revocation_*",
    "web/setups.py": "each concern's start and stop: tests/unit/web/test_app_lifecycle.py",
    "web/proxy.py": "tests/functional/test_shape_functional.py, test_slow_readers.py, "
    "test_collapse_functional.py",
    "web/middleware/admission.py": f"{APP} (pipeline), tests/functional/test_feed_admission.py",
    "web/middleware/recording.py": "every route's audit line: tests/unit/web/test_app_pipeline.py",
    "web/middleware/refusals.py": f"every refusal's JSON {APP}",
    "web/routes/admin.py": "tests/functional/test_operations.py",
    "web/routes/audit_events.py": "tests/functional/test_audit_functional.py",
    "web/routes/health.py": "tests/functional/test_operations.py, test_redis_outages.py",
    "web/routes/local_key.py": "tests/functional/test_local_key.py",
    "web/routes/revocations.py": "tests/functional/test_revocation_functional.py",
    "web/routes/shape.py": "tests/functional/test_shape_functional.py",
}
# Test files that mirror no module, and why.
UNMIRRORED: dict[str, str] = {
    "test_mirror.py": "this test",
    "sql/test_electric_where.py": "the oracle the property tests judge the gateway's forwarded "
    "where with (tests.unit.sql.electric_where), written apart from emit.py",
}


def modules() -> set[Path]:
    return {
        path.relative_to(GATEWAY)
        for path in GATEWAY.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }


def mirrored_module(test: Path, known: set[Path]) -> Path | None:
    """The module a test file (relative to tests/unit/) mirrors: test_<module>[_<aspect>].py in
    the module's folder, or test_<package>.py beside a package (its __init__, as test_cli.py)."""
    stem = test.stem.removeprefix("test_")
    candidates = sorted(
        (module for module in known if module.parent == test.parent),
        key=lambda module: -len(module.stem),
    )
    for module in candidates:
        if stem == module.stem or stem.startswith(module.stem + "_"):
            return module
    package = test.parent / stem / "__init__.py"
    return package if (GATEWAY / package).is_file() else None


def unit_tests() -> list[Path]:
    return sorted(path.relative_to(UNIT) for path in UNIT.rglob("test_*.py"))


def test_every_module_has_a_mirrored_test_file() -> None:
    known = modules()
    covered = {mirrored_module(test, known) for test in unit_tests()}
    missing = sorted(str(m) for m in known - covered if str(m) not in EXEMPT)
    assert missing == [], "no tests/unit/<path>/test_<module>.py (or an EXEMPT entry) for these"


def test_every_unit_test_file_names_a_module() -> None:
    known = modules()
    strays = [
        str(test)
        for test in unit_tests()
        if mirrored_module(test, known) is None and str(test) not in UNMIRRORED
    ]
    assert strays == [], "these test files mirror no gateway module: rename or move them"


def test_every_exemption_names_a_module_that_still_has_no_mirror() -> None:
    known = modules()
    covered = {str(mirrored_module(test, known)) for test in unit_tests()}
    stale = [m for m in EXEMPT if Path(m) not in known or m in covered]
    stale += [t for t in UNMIRRORED if not (UNIT / t).is_file()]
    assert stale == [], "drop these exemptions: the module is gone or has its mirror now"


def test_matching_reads_module_aspect_and_package_names() -> None:
    known = {Path("web/routes/shape.py"), Path("audit/client_events.py"), Path("audit/writer.py")}
    assert mirrored_module(Path("web/routes/test_shape.py"), known) == Path("web/routes/shape.py")
    assert mirrored_module(Path("web/routes/test_shape_subset.py"), known) == Path(
        "web/routes/shape.py"
    )
    assert mirrored_module(Path("audit/test_client_events_budget.py"), known) == Path(
        "audit/client_events.py"
    )
    assert mirrored_module(Path("test_cli.py"), known) == Path("cli/__init__.py")
    assert mirrored_module(Path("web/test_shape.py"), known) is None  # wrong folder
    assert mirrored_module(Path("audit/test_clients.py"), known) is None
