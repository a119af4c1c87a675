"""A real Electric for the functional and real-client tests, when one is at hand.

`find_real_electric()` returns the server named by `ELECTRIC_TEST_URL` (with
`ELECTRIC_TEST_SECRET` and `ELECTRIC_TEST_DATABASE_URL`), or one started from the official image
through testcontainers when a Docker engine answers, or None: then the tests use the imitation
(`electric_imitation`). `Tap` sits between the gateway and the real server, recording what it is
sent and counting held requests, so the tests' assertions about "what Electric saw" still hold.
See docs/electric-upgrades.md.
"""

from __future__ import annotations

from electric_imitation.real.discover import RealElectric, find_real_electric, real_electric_wanted
from electric_imitation.real.tap import Tap, TapState, start_tap

__all__ = [
    "RealElectric",
    "Tap",
    "TapState",
    "find_real_electric",
    "real_electric_wanted",
    "start_tap",
]
