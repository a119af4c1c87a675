"""A faithful fake of Electric's HTTP shape API, executed on real PostgreSQL, for tests.

    app = make_electric_app(ElectricConfig(dsn=...))
    state = app[ELECTRIC]          # test hooks: requests, inject(Fault), rotate(), stats

Standalone: `python -m tests.electric --port 3000` (see `__main__.py`).
"""

from __future__ import annotations

from tests.electric.app import make_electric_app
from tests.electric.config import VERSION, ElectricConfig, default_dsn
from tests.electric.faults import Fault, FaultKind
from tests.electric.recorder import RecordedRequest
from tests.electric.shape_cache import Rotation
from tests.electric.state import ELECTRIC, ElectricState, Stats

__all__ = [
    "ELECTRIC",
    "VERSION",
    "ElectricConfig",
    "ElectricState",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Rotation",
    "Stats",
    "default_dsn",
    "make_electric_app",
]
