"""Which module may import what: the Kafka client is kafka.py's alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KITCHEN = ROOT / "kitchen"


def importers(package: str) -> set[str]:
    """The kitchen/ modules (and app.py) that import `package` (or anything under it)."""
    found = set()
    for path in [*KITCHEN.glob("*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n == package or n.startswith(package + ".") for n in names):
                found.add(path.name)
    return found


def test_only_kafka_py_imports_the_kafka_client() -> None:
    assert importers("confluent_kafka") == {"kafka.py"}


def test_only_the_payment_providers_import_stripe() -> None:
    """Stripe's client lives in stripe_provider.py (providers.py uses the package's webhook
    signatures only), so no other module can set the `stripe` module's global settings."""
    assert importers("stripe") == {"providers.py", "stripe_provider.py"}
