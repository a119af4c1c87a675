"""Which Electric the functional and real-client tests run against (a pytest plugin).

- Tests marked `across_electric_versions` (the suites that exercise Electric's protocol) run
  once per imitated version (1.0.10 and 1.7) and, with a real Electric at hand
  (`electric_imitation.real`: `ELECTRIC_TEST_URL`, or Docker), once more against it through a
  recording `Tap` (`-k electric-real` selects those runs).
- The others (gateway-internal: audit, limits, operations) run on the imitation's default.
- `@pytest.mark.electric_feature("sse")` skips where the server lacks the feature (the real
  server's version comes from its `electric-server` header); `@pytest.mark.imitation_only(why)`
  skips on a real server (fault injection, for one, has no real counterpart).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pytest

from electric_imitation import VERSION_NAMES, Fault, RecordedRequest, Rotation, Stats
from electric_imitation.config import DEFAULT_VERSION
from electric_imitation.real import RealElectric, find_real_electric, real_electric_wanted
from electric_imitation.real.discover import RealElectricError
from electric_imitation.versions import FEATURE_SINCE, missing_feature, server_version

REAL: str = "real"


class UpstreamHooks(Protocol):
    """What tests ask of their Electric: the imitation's state or a tap's."""

    stats: Stats

    @property
    def requests(self) -> list[RecordedRequest]: ...

    def inject(self, fault: Fault) -> None: ...

    async def rotate(
        self, *, handle: str | None = None, table: str | None = None
    ) -> list[Rotation]: ...

    async def wait_for(self, condition: Callable[[Stats], bool], within: float = 5.0) -> None: ...


@dataclass(frozen=True, slots=True)
class ElectricTarget:
    """The Electric one test runs against: an imitated version, or a real server."""

    version: str  # "1.0.10" / "1.7" for the imitation, "x.y.z" for a real server
    real: RealElectric | None = None


def pytest_configure(config: pytest.Config) -> None:
    features = ", ".join(FEATURE_SINCE)
    config.addinivalue_line(
        "markers",
        f"electric_feature(name): needs an Electric feature newer than 1.0.10 ({features})",
    )
    config.addinivalue_line(
        "markers", "imitation_only(reason): needs the imitation's test hooks, not a real server"
    )
    config.addinivalue_line(
        "markers", "across_electric_versions: run once per imitated Electric version"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "electric_target" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("across_electric_versions"):
        names = [*VERSION_NAMES, *([REAL] if real_electric_wanted() else [])]
    else:
        names = [DEFAULT_VERSION]
    metafunc.parametrize(
        "electric_target", names, indirect=True, ids=[f"electric-{name}" for name in names]
    )


@pytest.fixture
def electric_target(request: pytest.FixtureRequest) -> ElectricTarget:
    """This test's Electric, after the markers had their say (skip, with the reason)."""
    name: str = request.param
    if name == REAL:
        target = _real_target()
        for marker in request.node.iter_markers("imitation_only"):
            pytest.skip(f"needs the imitation ({', '.join(map(str, marker.args))})")
        for marker in request.node.iter_markers("electric_feature"):
            for feature in marker.args:
                assert target.real is not None
                reason = missing_feature(feature, target.real.version)
                if reason is not None:
                    pytest.skip(reason)
        return target
    server = server_version(name)
    for marker in request.node.iter_markers("electric_feature"):
        for feature in marker.args:
            if feature not in FEATURE_SINCE:
                raise ValueError(f"unknown Electric feature {feature!r}")
            if not server.has(feature):
                since = ".".join(map(str, FEATURE_SINCE[feature]))
                pytest.skip(f"needs Electric's {feature} (since {since}); imitating {name}")
    return ElectricTarget(name)


@pytest.fixture
def electric_database_url(electric_target: ElectricTarget, request: pytest.FixtureRequest) -> str:
    """The database the test's Electric replicates from: create the test's tables here."""
    if electric_target.real is not None:
        return electric_target.real.database_url
    url: str = request.getfixturevalue("database_url")
    return url


def _real_target() -> ElectricTarget:
    try:
        real = find_real_electric()
    except RealElectricError as error:
        pytest.fail(str(error), pytrace=False)
    if real is None:  # wanted (Docker answered) but nothing came up
        problem = "a real Electric was wanted but none started"
        if os.environ.get("CI"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return ElectricTarget(real.version_name, real)
