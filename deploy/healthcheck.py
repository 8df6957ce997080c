"""The container's HEALTHCHECK probe (Dockerfile): GET /health of the Kitchen process.

    python healthcheck.py [PID]    # PID: the Kitchen process (default 1, the container's)

Exit 0 healthy, 1 not. The api role answers on `KITCHEN_HTTP_PORT`; a process without it
answers on its operations port (`KITCHEN_METRICS_PORT`) when one is set, and otherwise
serves nothing to probe: its liveness is its process, which Docker already watches.
`--roles` on the process's command line wins over KITCHEN_ROLES_API, as in app.py.
Standard library only: the slim image has no curl.
"""

import os
import sys
import urllib.request


def roles_of(pid: str) -> set[str] | None:
    """The roles `--roles` names on the process's command line, or None without one."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace").split("\0")
    for i, arg in enumerate(argv):
        if arg == "--roles" and i + 1 < len(argv):
            return {r.strip() for r in argv[i + 1].split(",")}
        if arg.startswith("--roles="):
            return {r.strip() for r in arg.split("=", 1)[1].split(",")}
    return None


def port_to_probe(pid: str) -> str | None:
    roles = roles_of(pid)
    if roles is not None:
        api = "api" in roles
    else:
        api = os.environ.get("KITCHEN_ROLES_API", "true").strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    if api:
        return os.environ.get("KITCHEN_HTTP_PORT", "8000")
    port = os.environ.get("KITCHEN_METRICS_PORT", "0").strip()
    return port if port not in ("", "0") else None


def main() -> int:
    port = port_to_probe(sys.argv[1] if len(sys.argv) > 1 else "1")
    if port is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except Exception as exc:  # connection refused, timeout, HTTP error: all mean unhealthy
        print(f"unhealthy: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
