#!/usr/bin/env python3
"""The image's health check: GET a Dask server's /health; exit 0 only if it answers "ok".

The URL is the first argument, else $DASKBENCH_HEALTH_URL, else `dask
scheduler`'s default dashboard (http://127.0.0.1:8787/health). A worker started
with `--dashboard-address 8788` sets DASKBENCH_HEALTH_URL=http://127.0.0.1:8788/health.

Installed in the image as `daskbench-healthcheck` (deploy/Dockerfile's
HEALTHCHECK). It is a program of its own, with the URL as one plain argument,
so a container engine that runs a probe's command through a shell (podman 4.3
does for `podman kube play`) runs the same thing as one that does not.
"""

import os
import sys
import urllib.request

DEFAULT = "http://127.0.0.1:8787/health"


def main(argv: list) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("DASKBENCH_HEALTH_URL", DEFAULT)
    try:
        with urllib.request.urlopen(url, timeout=4) as r:
            body = r.read(64).decode(errors="replace").strip()
    except Exception as exc:  # refused, timed out, HTTP error: all mean unhealthy
        print(f"unhealthy: {url}: {exc}")
        return 1
    if body != "ok":
        print(f"unhealthy: {url} answered {body!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
