"""SQL text, read with PostgreSQL's own parser (pglast): a leaf package, importing nothing of
the gateway's, so `rules` (at load) and `shape` (per request) both build on it."""
