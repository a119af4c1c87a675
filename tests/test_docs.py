"""The README and docs/ stand alone and stay true: they point at nothing outside the repository,
every relative link and anchor resolves, and the reference tables cover what the code has (every
variable the settings read, every error code with its status)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.errors import STATUS, Code

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {anchor(h) for h in HEADING.findall(text)}


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_docs_never_point_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    for outside in ("../shared", "shared/SPEC", "electric-protocol.md", "/work/"):
        assert outside not in text, f"{path.name} mentions {outside}"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    for target in LINK.findall(path.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: {target} does not exist"
        assert ROOT in linked.parents or linked == ROOT, f"{path.name}: {target} leaves the repo"
        if fragment:
            assert fragment in anchors(linked), f"{path.name}: no heading #{fragment} in {file}"


def test_anchor_follows_github_rules() -> None:
    assert anchor("A bare process behind an HTTP/2 front") == "a-bare-process-behind-an-http2-front"
    assert anchor("Electric's storage") == "electrics-storage"


def test_configuration_names_every_variable_the_settings_read() -> None:
    source = (ROOT / "gateway" / "settings.py").read_text()
    variables = set(re.findall(r'"((?:ELECTRIC|GATEWAY|JWT|REDIS|LOG)_[A-Z_]+)"', source))
    assert "GATEWAY_PORT" in variables  # the pattern reads the settings' tables
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(v for v in variables if f"`{v}`" not in documented)
    assert missing == []


@pytest.mark.parametrize("code", list(Code), ids=[c.value for c in Code])
def test_http_api_lists_every_error_code_with_its_status(code: Code) -> None:
    text = (ROOT / "docs" / "http-api.md").read_text()
    assert f"| {STATUS[code]} | `{code.value}` |" in text


def test_readme_shows_the_two_commands_and_the_compose_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
    assert "docker compose -f deploy/compose.yaml up" in readme
    assert (ROOT / "deploy" / "compose.yaml").exists()


def test_the_threat_model_cites_tests_that_exist() -> None:
    """Each control in docs/security.md names the test that proves it; a renamed or deleted
    test must not leave the threat model pointing at nothing."""
    tests = ROOT / "tests"
    names = {
        m for p in tests.rglob("test_*.py") for m in re.findall(r"def (test_\w+)", p.read_text())
    }
    cited = re.findall(r"`([\w/]+\.py)(?:::(test_\w+))?(?:\[[\w-]+\])?`|`(test_\w+)`",
                       (ROOT / "docs" / "security.md").read_text())  # fmt: skip
    assert len(cited) > 40
    for path, test, bare in cited:
        if path:
            assert (tests / path).is_file(), f"tests/{path} does not exist"
        if test:
            assert f"def {test}(" in (tests / path).read_text(), f"{path}::{test} does not exist"
        if bare:
            assert bare in names, f"no test is named {bare}"


# Documents that are not in the repository, spelled so this file does not match itself.
OUTSIDE_CITATIONS = re.compile(
    r"\b" + "SP" + r"EC\b|" + "protocol" + r" notes|electric-" + "protocol|" + r"\.\./" + "shared"
)
SOURCES = ("gateway", "bench", "deploy", "tests")
SOURCE_SUFFIXES = (".py", ".md", ".js", ".mjs", ".yaml", ".sh", ".sql", ".conf", ".html")


def source_files() -> list[Path]:
    found = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if "node_modules" in parts or "schemas" in parts or not path.is_file():
                continue
            if path.suffix in SOURCE_SUFFIXES and path != Path(__file__):
                found.append(path)
    return found


def test_source_files_cite_the_projects_docs_or_electrics_source_never_outside_notes() -> None:
    """A reader has the repository: a comment citing a document it does not hold (a spec, notes
    kept elsewhere) sends them nowhere. Cite docs/ or Electric's source instead."""
    assert len(source_files()) > 100
    citing = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in source_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_CITATIONS.search(line)
    ]
    assert citing == []
    assert OUTSIDE_CITATIONS.search("as the " + "SP" + "EC says")  # the check can fail


def test_the_benchmarks_stand_alone() -> None:
    for path in (ROOT / "bench").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".md"):
            assert "the issue" not in path.read_text(), path.name


def readiness_texts() -> dict[str, str]:
    """What each document says /readyz reflects."""
    api = (ROOT / "docs" / "http-api.md").read_text()
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    return {
        "http-api.md": next(
            line for line in api.splitlines() if line.startswith("| `GET /readyz`")
        ),
        "deployment.md": deployment.split("**Probes.**", 1)[1].split("\n\n", 1)[0],
        "operations.md": operations.split("### Health", 1)[1].split("###", 1)[0],
    }


@pytest.mark.parametrize("document", ["http-api.md", "deployment.md", "operations.md"])
def test_the_docs_agree_on_what_readiness_reflects(document: str) -> None:
    text = " ".join(readiness_texts()[document].split())
    for condition in ("revocation view", "audit log", "`default` upstream"):
        assert condition in text, f"{document} does not say /readyz reflects the {condition}"
    assert "rules are not loaded" not in text


def test_operations_names_the_shape_label_of_routes_that_name_no_shape() -> None:
    """The counter labels them `-` (tests/unit/web/test_app_pipeline.py proves it); the doc says
    so."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    row = next(line for line in operations.splitlines()
               if line.startswith("| `shape_gateway_requests_total`"))  # fmt: skip
    assert "`-` for routes that name no shape" in row
