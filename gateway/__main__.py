"""`python -m gateway` is the `shape-gateway` console script."""

from gateway.cli import main

raise SystemExit(main())
