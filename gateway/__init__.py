"""shape-gateway: the authenticating, tenant-scoping proxy in front of Electric's shape API."""

__version__ = "0.1.0"
