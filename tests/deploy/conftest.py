"""The deploy tests put the real gateway behind the shipped front: the functional fixtures
(our Electric-protocol upstream on real PostgreSQL, a world of tenants' rows) are theirs too."""

from __future__ import annotations

from tests.functional.conftest import electric, electric_factory, world

__all__ = ["electric", "electric_factory", "world"]
