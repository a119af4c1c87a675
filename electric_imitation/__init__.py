"""An imitation of Electric's HTTP shape API, executed on real PostgreSQL, for tests.

    app = make_electric_app(ElectricConfig(dsn=..., version="1.0.10"))   # or "1.7"
    state = app[ELECTRIC]          # test hooks: requests, inject(Fault), rotate(), stats

It is as strict as the real server where that can hide gateway bugs (README.md, `versions`):
wheres are judged by Electric's own parser rules, not by PostgreSQL (`where_check`), and
headers, compression, chunking and errors follow the version chosen (`versions`): 1.0.10 (run
by hand beside the imitation) or 1.7 (as its source reads). See README.md.

Standalone: `python -m electric_imitation --port 3000 [--electric-version 1.0.10]`.
"""

from __future__ import annotations

from electric_imitation.app import make_electric_app
from electric_imitation.config import ElectricConfig, default_dsn
from electric_imitation.faults import Fault, FaultKind
from electric_imitation.recorder import RecordedRequest
from electric_imitation.shape_cache import Rotation
from electric_imitation.state import ELECTRIC, ElectricState, Stats
from electric_imitation.versions import FEATURES, VERSION_NAMES, ServerVersion, server_version

__all__ = [
    "ELECTRIC",
    "FEATURES",
    "VERSION_NAMES",
    "ElectricConfig",
    "ElectricState",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Rotation",
    "ServerVersion",
    "Stats",
    "default_dsn",
    "make_electric_app",
    "server_version",
]
