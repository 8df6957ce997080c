"""The Stripe adapter's error mapping and what it sends, against a canned local server
that answers as Stripe does (no localstripe: it cannot answer 402, 429, 5xx on demand)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from kitchen.providers import Hold, PaymentRefused, ProviderUnavailable, idempotency_key
from kitchen.stripe_provider import StripeProvider
from tests.helpers import free_port

INTENT = {
    "id": "pi_canned",
    "object": "payment_intent",
    "status": "requires_payment_method",
    "amount": 1250,
    "amount_received": 0,
    "currency": "eur",
    "client_secret": "pi_canned_secret_x",
    "metadata": {"order_id": "42", "merchant_id": "7"},
    "latest_charge": None,
}


class Canned:
    """Answers every request with `status` and `body`; keeps what it was sent. With
    `hang` set, holds each answer until the test ends (a Stripe that does not answer)."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = json.dumps(INTENT).encode()
        self.requests: list[tuple[str, str, dict[str, str], dict[str, list[str]]]] = []
        self.hang = False
        self.release = threading.Event()
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                canned.requests.append((self.command, self.path, dict(self.headers), form))
                if canned.hang:
                    canned.release.wait(30)
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def error(self, status: int, **error: str) -> None:
        self.status = status
        self.body = json.dumps({"error": error}).encode()


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    thread = threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()
    thread.join(10)


HOLD = Hold(order_id=42, merchant_id=7, amount=1250, currency="EUR")
KEY = idempotency_key(42, "hold", 7)


def test_a_hold_is_sent_as_a_manual_capture_intent_with_the_idempotency_key(
    canned: Canned,
) -> None:
    intent = StripeProvider("sk_test_x", canned.base).create_hold(HOLD, KEY)

    assert (intent.id, intent.status, intent.amount, intent.currency) == (
        "pi_canned",
        "requires_payment_method",
        1250,
        "EUR",
    )
    assert (intent.order_id, intent.merchant_id, intent.client_secret) == (
        42,
        7,
        "pi_canned_secret_x",
    )
    [(method, path, headers, form)] = canned.requests
    assert (method, path) == ("POST", "/v1/payment_intents")
    assert headers["Idempotency-Key"] == "kitchen-7-42-hold"
    assert headers["Authorization"] == "Bearer sk_test_x"
    assert form == {
        "amount": ["1250"],
        "currency": ["eur"],
        "capture_method": ["manual"],
        "metadata[order_id]": ["42"],
        "metadata[merchant_id]": ["7"],
    }


def test_capture_cancel_and_refund_send_their_keys(canned: Canned) -> None:
    provider = StripeProvider("sk_test_x", canned.base)
    canned.body = json.dumps({**INTENT, "status": "succeeded", "amount_received": 1250}).encode()
    assert provider.capture("pi_canned", "kitchen-7-42-capture").amount_received == 1250
    canned.body = json.dumps({**INTENT, "status": "canceled"}).encode()
    assert provider.cancel("pi_canned", "kitchen-7-42-cancel").status == "canceled"
    canned.body = json.dumps(
        {"id": "re_1", "object": "refund", "amount": 300, "status": "succeeded"}
    ).encode()
    refund = provider.refund("pi_canned", 300, "kitchen-7-42-refund-5")
    assert (refund.id, refund.amount, refund.status) == ("re_1", 300, "succeeded")

    sent = [(path, headers["Idempotency-Key"], form) for _, path, headers, form in canned.requests]
    assert sent == [
        (
            "/v1/payment_intents/pi_canned/capture",
            "kitchen-7-42-capture",
            {"expand[0]": ["latest_charge"]},
        ),
        (
            "/v1/payment_intents/pi_canned/cancel",
            "kitchen-7-42-cancel",
            {"expand[0]": ["latest_charge"]},
        ),
        (
            "/v1/refunds",
            "kitchen-7-42-refund-5",
            {"payment_intent": ["pi_canned"], "amount": ["300"]},
        ),
    ]


def test_the_refunded_amount_is_read_from_the_charge(canned: Canned) -> None:
    """Stripe keeps amount_refunded on the charge, not on the intent."""
    charge = {"id": "ch_1", "object": "charge", "amount": 1250, "amount_captured": 1250}
    canned.body = json.dumps(
        {
            **INTENT,
            "status": "succeeded",
            "amount_received": 1250,
            "latest_charge": {**charge, "amount_refunded": 300},
        }
    ).encode()
    intent = StripeProvider("sk_test_x", canned.base).retrieve("pi_canned")
    assert (intent.amount_received, intent.amount_refunded) == (1250, 300)
    [(method, path, _, _)] = canned.requests
    assert (method, path) == ("GET", "/v1/payment_intents/pi_canned?expand%5B0%5D=latest_charge")


@pytest.mark.parametrize(
    ("status", "error", "code", "message"),
    [
        (
            402,
            {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            },
            "card_declined",
            "Your card has insufficient funds.",
        ),
        (
            400,
            {
                "type": "invalid_request_error",
                "code": "payment_intent_unexpected_state",
                "message": "This PaymentIntent could not be captured because it has a status "
                "of canceled.",
            },
            "payment_intent_unexpected_state",
            "This PaymentIntent could not be captured because it has a status of canceled.",
        ),
        (
            404,
            {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such payment_intent: 'pi_canned'",
            },
            "resource_missing",
            "No such payment_intent: 'pi_canned'",
        ),
        (
            400,
            {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with.",
            },
            None,
            "Keys for idempotent requests can only be used with the same parameters they "
            "were first used with.",
        ),
    ],
)
def test_a_refusal_for_good_is_payment_refused(
    canned: Canned, status: int, error: dict[str, str], code: str | None, message: str
) -> None:
    canned.error(status, **error)
    with pytest.raises(PaymentRefused) as refused:
        StripeProvider("sk_test_x", canned.base).capture("pi_canned", "kitchen-7-42-capture")
    assert (str(refused.value), refused.value.code) == (message, code)
    assert len(canned.requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}),
        (400, {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}),
        (500, {"type": "api_error", "message": "Something went wrong on Stripe's end."}),
        (503, {"type": "api_error", "message": "Service unavailable"}),
        # The same key while its first call is still running.
        (409, {"type": "idempotency_error", "message": "There is currently another "
               "in-progress request using this Idempotent Key."}),
    ],
)  # fmt: skip
def test_a_passing_failure_is_provider_unavailable_tried_once(
    canned: Canned, status: int, error: dict[str, str]
) -> None:
    """The client never retries by itself: the payments role does, with back-off."""
    canned.error(status, **error)
    with pytest.raises(
        ProviderUnavailable, match="^" + re.escape(f"Stripe did not answer: {error['message']}")
    ):
        StripeProvider("sk_test_x", canned.base).create_hold(HOLD, KEY)
    assert len(canned.requests) == 1


def test_an_answer_that_is_not_json_is_provider_unavailable(canned: Canned) -> None:
    canned.status, canned.body = 502, b"<html>Bad gateway</html>"
    with pytest.raises(ProviderUnavailable, match=r"^Stripe did not answer"):
        StripeProvider("sk_test_x", canned.base).retrieve("pi_canned")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_provider_unavailable_naming_the_setting(
    canned: Canned, status: int
) -> None:
    canned.error(status, type="invalid_request_error", message="Invalid API Key provided: sk_***")
    with pytest.raises(ProviderUnavailable) as unavailable:
        StripeProvider("sk_test_x", canned.base).create_hold(HOLD, KEY)
    assert str(unavailable.value) == (
        "Stripe refused the API key (Invalid API Key provided: sk_***): set a valid secret key "
        "in [payments] stripe_api_key (KITCHEN_PAYMENTS_STRIPE_API_KEY); the payment waits "
        "until then"
    )


def test_no_answer_within_the_timeout_is_provider_unavailable(canned: Canned) -> None:
    canned.hang = True
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"^Stripe did not answer"):
        StripeProvider("sk_test_x", canned.base, timeout=0.5).capture("pi_canned", "k")
    assert time.monotonic() - started < 5
    assert len(canned.requests) == 1


def test_nothing_listening_is_provider_unavailable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"^Stripe did not answer"):
        StripeProvider("sk_test_x", closed).create_hold(HOLD, KEY)
    assert time.monotonic() - started < 5


def test_a_capture_answered_without_capturing_is_refused(canned: Canned) -> None:
    """localstripe answers a capture of a canceled hold 200, `canceled` (Stripe: 400)."""
    canned.body = json.dumps({**INTENT, "status": "canceled"}).encode()
    with pytest.raises(PaymentRefused) as refused:
        StripeProvider("sk_test_x", canned.base).capture("pi_canned", "k")
    assert (str(refused.value), refused.value.code) == (
        "the capture left the payment canceled, not succeeded",
        "payment_intent_unexpected_state",
    )


def test_two_providers_share_no_settings(canned: Canned) -> None:
    """Each has its own client: nothing is set on the stripe module."""
    import stripe

    before = (stripe.api_key, stripe.api_base, stripe.max_network_retries)
    one = StripeProvider("sk_test_one", canned.base)
    StripeProvider("sk_test_two", f"http://127.0.0.1:{free_port()}")
    one.retrieve("pi_canned")
    assert canned.requests[0][2]["Authorization"] == "Bearer sk_test_one"
    assert (stripe.api_key, stripe.api_base, stripe.max_network_retries) == before
