"""Container health check: exit 0 when the daemon's /healthz answers 200, else 1 with the reason.

Slim Python images have no curl or wget, so the image's HEALTHCHECK runs this with the
standard library only. It asks the endpoint the daemon itself serves (``MONITOR_HTTP_HOST``,
``MONITOR_HTTP_PORT``), reaching a wildcard bind address through loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def healthz_url(environ: dict[str, str]) -> str | None:
    """The URL of /healthz as this container's settings place it; None when it is turned off."""
    port = int(environ.get("MONITOR_HTTP_PORT", "9120"))
    if port == 0:
        return None
    host = environ.get("MONITOR_HTTP_HOST", "127.0.0.1").strip()
    host = WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def say(line: str) -> None:
    """Docker keeps the check's output in ``docker inspect``: one line says what was seen."""
    sys.stdout.write(line + "\n")


def main() -> int:
    url = healthz_url(dict(os.environ))
    if url is None:
        say("healthz is turned off (MONITOR_HTTP_PORT=0): nothing to check")
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            say(f"{url}: {response.status}")
            return 0
    except urllib.error.HTTPError as exc:  # 503 and its reason
        reason = exc.read(2000).decode("utf-8", "replace").strip()
        say(f"{url}: {exc.code} {reason}")
    except (urllib.error.URLError, OSError) as exc:
        say(f"{url}: unreachable: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
