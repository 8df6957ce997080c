"""Which endpoints answer without a key in production, as settings.toml and settings.py
say (issue 17 item 7: they said "every endpoint but health")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import dashboard

ROOT = Path(__file__).resolve().parents[2]


def stated(text: str) -> set[str]:
    """The paths a comment names as open in production: those between "but" and "need"
    in the sentence after "production:"."""
    production = re.split(r'"?production"?:', text, maxsplit=1)[1]
    named = production.split(" but ", 1)[1].split("need", 1)[0]
    return set(re.findall(r"/[\w./]*", named))


def comment_of(path: Path, start: str, stop: str) -> str:
    """The comment lines from the one holding `start` to the one holding `stop`, joined."""
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i in range(first, len(lines)) if stop in lines[i])
    return " ".join(line.strip().lstrip("#").strip() for line in lines[first : last + 1])


def test_the_settings_name_the_endpoints_that_need_no_key(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    app = make_kitchen("api", app={"env": "production"}).web_app()
    static = sorted(p.name for p in Path(dashboard.STATIC).iterdir())[0]
    open_paths = set()
    with TestClient(app) as client:
        for route in app.routes:
            if isinstance(route, Mount):
                url, shown = f"{route.path}/{static}", f"{route.path}/..."
            elif isinstance(route, Route) and "GET" in (route.methods or ()):
                url = shown = re.sub(r"\{\w+\}", "1", route.path)
            else:
                continue
            status = client.get(url).status_code
            assert status != 500, url
            if status != 401:
                open_paths.add(shown)
    assert open_paths == {"/", "/health", "/ready", "/openapi.json", "/static/..."}

    toml = comment_of(ROOT / "settings.toml", '"production"', "[metrics] token")
    assert stated(toml) == open_paths
    settings = comment_of(ROOT / "kitchen" / "settings.py", "# development: a request", "token")
    assert stated(settings) == open_paths
