"""localstripe (PyPI, a stateful Stripe emulator) for the Stripe adapter's contract tests.

`running()` starts it as a subprocess on a free local port and stops it; `confirm` does
what a till does with a hold's client secret (attach a card, confirm); `WebhookReceiver`
catches the signed events localstripe posts. `conftest.py`'s `localstripe` fixture
starts one per session.

localstripe 1.15.10 binds every interface and keeps its state in
/tmp/localstripe.pickle, shared by every instance on the machine (a path it hard-codes:
TMPDIR does not move it). Run as `python -m tests.localstripe <fd> <state file>`, this
module serves localstripe's app on a socket the parent already bound to 127.0.0.1 (the
port cannot be taken between choosing and binding it) and keeps the state in a file of
the test run's own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

# Any "sk_..." key is accepted by localstripe.
API_KEY = "sk_test_kitchen"

# Stripe's test cards, as localstripe knows them.
VISA = "4242424242424242"
DECLINED = "4000000000000341"  # attaches, then declines when charged (card_declined)

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Localstripe:
    base_url: str  # e.g. http://127.0.0.1:40123: the adapter's api_base
    api_key: str
    log: Path  # localstripe's own output (its access log), to read when a test fails
    state: Path  # where it keeps its objects (its pickle file)
    started_seconds: float  # from spawning the process to its first answer


@contextmanager
def running(folder: Path, timeout: float = 30.0) -> Iterator[Localstripe]:
    """A localstripe process answering on 127.0.0.1, its state file and log in `folder`;
    stopped (SIGTERM, then SIGKILL) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    log = folder / "localstripe.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.localstripe", str(listener.fileno()), str(folder)],
            cwd=ROOT,
            pass_fds=[listener.fileno()],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    listener.close()  # the child holds its own copy
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log, timeout)
        yield Localstripe(
            base, API_KEY, log, folder / "localstripe.pickle", time.monotonic() - started
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with {process.returncode}: {log.read_text()}")
        try:
            answer = httpx.get(f"{base}/v1/balance", auth=(API_KEY, ""), timeout=2)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"localstripe did not answer within {timeout} s: {log.read_text()}")
        time.sleep(0.05)


def confirm(base_url: str, intent_id: str, card: str = VISA) -> httpx.Response:
    """Pay the hold `intent_id` with the test `card`, as a till does with the client
    secret: a card PaymentMethod attached to the intent, then confirmed. A card that
    authorizes leaves the intent `requires_capture`; a declined one answers 402
    (card_declined) and leaves it `requires_payment_method` with a last_payment_error.
    Returns the confirm answer (localstripe takes no payment_method on confirm itself,
    so the card is attached by an update first)."""
    auth = (API_KEY, "")
    method = httpx.post(
        f"{base_url}/v1/payment_methods",
        auth=auth,
        data={
            "type": "card",
            "card[number]": card,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        timeout=10,
    )
    method.raise_for_status()
    attached = httpx.post(
        f"{base_url}/v1/payment_intents/{intent_id}",
        auth=auth,
        data={"payment_method": method.json()["id"]},
        timeout=10,
    )
    attached.raise_for_status()
    return httpx.post(f"{base_url}/v1/payment_intents/{intent_id}/confirm", auth=auth, timeout=10)


def missing_event(base_url: str, intent_id: str, kind: str, secret: str) -> tuple[bytes, str]:
    """The event Stripe would send and localstripe does not (it sends no
    payment_intent.amount_capturable_updated or payment_intent.canceled): body and
    Stripe-Signature header, the intent as localstripe holds it now, signed with `secret`.
    An end-to-end test posts it to Kitchen's POST /payments/webhook after `confirm`."""
    from kitchen import providers  # not at the top: the localstripe process needs none of it

    intent = httpx.get(
        f"{base_url}/v1/payment_intents/{intent_id}", auth=(API_KEY, ""), timeout=10
    ).raise_for_status()
    body = json.dumps(
        {
            "id": f"evt_{kind.rsplit('.', 1)[1]}_{intent_id}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": intent.json()},
        }
    ).encode()
    return body, providers.sign(body, secret)


class WebhookReceiver:
    """A local HTTP endpoint that keeps every request posted to it (body and
    Stripe-Signature header), registered with localstripe as webhook `name`. localstripe
    has no way to remove a webhook: registering the same name again replaces it."""

    def __init__(self, localstripe: Localstripe, secret: str, name: str = "kitchen-test") -> None:
        self.secret = secret
        self.received: list[tuple[bytes, str | None]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append((body, self.headers.get("Stripe-Signature")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        url = f"http://127.0.0.1:{self._server.server_address[1]}/payments/webhook"
        answer = httpx.post(
            f"{localstripe.base_url}/_config/webhooks/{name}",
            data={"url": url, "secret": secret},
            timeout=10,
        )
        answer.raise_for_status()

    def events(self, intent_id: str, kind: str) -> list[tuple[bytes, str | None]]:
        """The requests whose event is of type `kind` about intent `intent_id`."""
        found = []
        for body, header in list(self.received):
            event = json.loads(body)
            if event.get("type") == kind and event["data"]["object"].get("id") == intent_id:
                found.append((body, header))
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _serve(fd: int, folder: str) -> None:
    """The child: localstripe's app on the inherited socket, its state in `folder`."""
    from aiohttp import web
    from localstripe import resources, server

    state = os.path.join(folder, "localstripe.pickle")  # Localstripe.state

    def dump_to_disk(self: resources.Store) -> None:
        with open(state, "wb") as f:
            resources.pickle.dump(dict(self), f, protocol=resources.pickle.HIGHEST_PROTOCOL)

    # The same as localstripe's own, with our path instead of /tmp/localstripe.pickle; it
    # never loads a previous state (--from-scratch).
    resources.Store.dump_to_disk = dump_to_disk
    # A test run killed outright (SIGKILL) cannot stop it: it stops when its parent is gone.
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    # Its access log and webhook deliveries ("webhook ... delivered") go to the log file.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    web.run_app(server.app, sock=socket.socket(fileno=fd), print=None)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
