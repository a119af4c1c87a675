"""The image's HEALTHCHECK: exit 0 when this container's gateway answers /healthz, else 1.

The image has no curl (nothing it does not need), so the probe is the Python it already has.
Standard library only, nothing written to disk: it runs on the read-only root filesystem.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("GATEWAY_PORT") or "8080"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
