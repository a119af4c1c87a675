"""Running the event loop: uvloop when it is installed (the `speed` extra), else asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
