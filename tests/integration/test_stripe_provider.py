"""The Stripe adapter's contract test, against localstripe (a stateful Stripe emulator,
started once per session by conftest's `localstripe` fixture): the cycle Kitchen drives
(hold, authorize by the till, capture or void, refund), a declined card, errors, and the
signed webhooks localstripe sends read by Kitchen's own verification."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kitchen import providers
from kitchen.providers import (
    Hold,
    Intent,
    PaymentRefused,
    ProviderUnavailable,
    idempotency_key,
    parse_event,
)
from kitchen.stripe_provider import StripeProvider
from tests.helpers import eventually, free_port
from tests.localstripe import (
    DECLINED,
    VISA,
    Localstripe,
    WebhookReceiver,
    confirm,
    missing_event,
    running,
)

MERCHANT = 7
_orders = itertools.count(1001)


@pytest.fixture
def provider(localstripe: Localstripe) -> StripeProvider:
    return StripeProvider(localstripe.api_key, localstripe.base_url)


def hold(provider: StripeProvider, amount: int = 1250) -> Intent:
    """A new order's hold (each test its own order ids)."""
    order = next(_orders)
    return provider.create_hold(
        Hold(order_id=order, merchant_id=MERCHANT, amount=amount, currency="EUR"),
        idempotency_key(order, "hold", MERCHANT),
    )


def authorized(provider: StripeProvider, localstripe: Localstripe, amount: int = 1250) -> Intent:
    """A hold the till paid with a card that authorizes: `requires_capture`."""
    intent = hold(provider, amount)
    answer = confirm(localstripe.base_url, intent.id, VISA)
    assert (answer.status_code, answer.json()["status"]) == (200, "requires_capture")
    return provider.retrieve(intent.id)


def key(intent: Intent, operation: str) -> str:
    assert intent.order_id is not None
    return idempotency_key(intent.order_id, operation, MERCHANT)


def test_a_hold_is_a_manual_capture_intent_carrying_the_order(
    provider: StripeProvider, localstripe: Localstripe
) -> None:
    intent = hold(provider, 1250)

    assert intent.status == providers.REQUIRES_PAYMENT_METHOD
    assert (intent.amount, intent.currency, intent.amount_received) == (1250, "EUR", 0)
    assert intent.id.startswith("pi_")
    assert intent.client_secret is not None
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.merchant_id == MERCHANT and intent.order_id is not None
    assert provider.retrieve(intent.id) == intent
    # As Stripe keeps it.
    raw = httpx.get(
        f"{localstripe.base_url}/v1/payment_intents/{intent.id}", auth=(localstripe.api_key, "")
    ).json()
    assert (raw["capture_method"], raw["currency"], raw["amount"]) == ("manual", "eur", 1250)
    assert raw["metadata"] == {"order_id": str(intent.order_id), "merchant_id": str(MERCHANT)}


def test_an_authorized_hold_is_captured(provider: StripeProvider, localstripe: Localstripe) -> None:
    intent = authorized(provider, localstripe, 1250)
    assert (intent.status, intent.amount_received) == (providers.REQUIRES_CAPTURE, 0)

    captured = provider.capture(intent.id, key(intent, "capture"))

    assert captured.status == providers.SUCCEEDED
    assert (captured.amount, captured.amount_received, captured.amount_refunded) == (1250, 1250, 0)
    assert provider.retrieve(intent.id) == captured


def test_an_authorized_hold_is_voided(provider: StripeProvider, localstripe: Localstripe) -> None:
    intent = authorized(provider, localstripe)

    voided = provider.cancel(intent.id, key(intent, "cancel"))

    assert (voided.status, voided.amount_received) == (providers.CANCELED, 0)
    assert provider.retrieve(intent.id).status == providers.CANCELED


def test_a_hold_never_paid_is_cancelled(provider: StripeProvider) -> None:
    """What the payments role does when hold_minutes pass without an authorization."""
    intent = hold(provider)

    assert provider.cancel(intent.id, key(intent, "cancel")).status == providers.CANCELED


def test_a_captured_payment_is_refunded_in_part_then_in_full(
    provider: StripeProvider, localstripe: Localstripe
) -> None:
    intent = authorized(provider, localstripe, 1250)
    provider.capture(intent.id, key(intent, "capture"))

    first = provider.refund(intent.id, 300, key(intent, "refund-1"))

    assert first.id.startswith("re_")
    assert (first.amount, first.status) == (300, "succeeded")
    after = provider.retrieve(intent.id)
    assert (after.status, after.amount_received, after.amount_refunded) == ("succeeded", 1250, 300)

    rest = provider.refund(intent.id, 950, key(intent, "refund-2"))

    assert (rest.amount, rest.status) == (950, "succeeded") and rest.id != first.id
    assert provider.retrieve(intent.id).amount_refunded == 1250


def test_a_declined_card_leaves_the_hold_unpaid_with_the_reason(
    provider: StripeProvider, localstripe: Localstripe
) -> None:
    intent = hold(provider)

    answer = confirm(localstripe.base_url, intent.id, DECLINED)

    assert answer.status_code == 402
    assert answer.json()["error"]["code"] == "card_declined"
    declined = provider.retrieve(intent.id)
    assert declined.status == providers.REQUIRES_PAYMENT_METHOD
    assert declined.failure == "Your card was declined."
    assert declined.amount_received == 0
    # Nothing to capture, and no retry can change that.
    with pytest.raises(PaymentRefused):
        provider.capture(intent.id, key(intent, "capture"))


def test_a_canceled_hold_cannot_be_captured_or_cancelled_again(
    provider: StripeProvider, localstripe: Localstripe
) -> None:
    intent = authorized(provider, localstripe)
    provider.cancel(intent.id, key(intent, "cancel"))

    # localstripe answers the capture 200 and leaves the intent `canceled` (Stripe answers
    # 400 payment_intent_unexpected_state): the adapter refuses both the same way.
    with pytest.raises(PaymentRefused) as refused:
        provider.capture(intent.id, key(intent, "capture"))
    assert refused.value.code == "payment_intent_unexpected_state"
    with pytest.raises(PaymentRefused):
        provider.cancel(intent.id, key(intent, "cancel-again"))
    assert provider.retrieve(intent.id).status == providers.CANCELED


def test_an_unknown_intent_is_refused(provider: StripeProvider) -> None:
    with pytest.raises(PaymentRefused, match=r"^Not Found$"):
        provider.retrieve("pi_unknown")


def test_a_wrong_key_waits_for_an_operator(localstripe: Localstripe) -> None:
    """localstripe takes any sk_... key; a publishable key is refused (401)."""
    with pytest.raises(ProviderUnavailable, match=r"\[payments\] stripe_api_key"):
        hold(StripeProvider("pk_test_wrong", localstripe.base_url))


def test_localstripe_not_running_is_provider_unavailable() -> None:
    closed = StripeProvider("sk_test_kitchen", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable, match=r"^Stripe did not answer"):
        hold(closed)
    with pytest.raises(ProviderUnavailable):
        closed.capture("pi_x", "kitchen-7-1-capture")


SECRET = "whsec_kitchen_contract_test"


@pytest.fixture
def webhooks(localstripe: Localstripe) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(localstripe, SECRET)
    yield receiver
    receiver.close()


def test_localstripe_webhooks_pass_kitchens_verification(
    provider: StripeProvider, localstripe: Localstripe, webhooks: WebhookReceiver
) -> None:
    paid = authorized(provider, localstripe, 1250)
    provider.capture(paid.id, key(paid, "capture"))
    declined = hold(provider, 800)
    confirm(localstripe.base_url, declined.id, DECLINED)

    [(body, header)] = eventually(lambda: webhooks.events(paid.id, providers.SUCCEEDED_EVENT))
    event = parse_event(body, header, SECRET)
    assert event.id.startswith("evt_") and event.type == providers.SUCCEEDED_EVENT
    assert (event.intent.id, event.intent.status, event.intent.amount) == (
        paid.id,
        providers.SUCCEEDED,
        1250,
    )
    assert (event.intent.order_id, event.intent.merchant_id) == (paid.order_id, MERCHANT)
    with pytest.raises(providers.BadSignature):
        parse_event(body, header, "whsec_another_secret")
    with pytest.raises(providers.BadSignature):
        parse_event(body.replace(b"1250", b"1"), header, SECRET)

    [(body, header)] = eventually(lambda: webhooks.events(declined.id, providers.FAILED))
    event = parse_event(body, header, SECRET)
    assert (event.type, event.intent.id) == (providers.FAILED, declined.id)
    assert event.intent.status == providers.REQUIRES_PAYMENT_METHOD
    assert event.intent.failure == "Your card was declined."
    assert (event.intent.order_id, event.intent.merchant_id) == (declined.order_id, MERCHANT)


def test_what_localstripe_does_not_emulate(
    provider: StripeProvider, localstripe: Localstripe, webhooks: WebhookReceiver
) -> None:
    """Gaps the README lists ("Payments > Stripe"); a localstripe that closes one fails
    here, and the README should say so."""
    # The Idempotency-Key is ignored: the same key makes a second intent (Stripe answers
    # the first one again).
    order = next(_orders)
    same = Hold(order_id=order, merchant_id=MERCHANT, amount=500, currency="EUR")
    first = provider.create_hold(same, idempotency_key(order, "hold", MERCHANT))
    second = provider.create_hold(same, idempotency_key(order, "hold", MERCHANT))
    assert first.id != second.id

    # A refund beyond what was captured is accepted (Stripe: 400 amount_too_large).
    captured = authorized(provider, localstripe, 1000)
    provider.capture(captured.id, key(captured, "capture"))
    assert provider.refund(captured.id, 5000, key(captured, "refund-1")).amount == 5000

    # No payment_intent.amount_capturable_updated on authorization, no
    # payment_intent.canceled on cancel, no charge.refunded on refund: the events localstripe
    # does send (succeeded, after those) arrive while none of these ever came.
    voided = authorized(provider, localstripe)
    provider.cancel(voided.id, key(voided, "cancel"))
    last = authorized(provider, localstripe, 700)
    provider.capture(last.id, key(last, "capture"))
    eventually(lambda: webhooks.events(last.id, providers.SUCCEEDED_EVENT))
    assert eventually(lambda: webhooks.events(captured.id, providers.SUCCEEDED_EVENT))
    for intent in (captured, voided, last):
        for kind in (providers.AUTHORIZED, providers.CANCELED_EVENT):
            assert webhooks.events(intent.id, kind) == []
    refunds = [body for body, _ in webhooks.received if b'"charge.refunded"' in body]
    assert refunds == []


def test_localstripe_runs_on_loopback_with_its_state_in_the_test_folder(
    tmp_path: Path, localstripe: Localstripe
) -> None:
    """The fixture's promises: 127.0.0.1 only, no /tmp/localstripe.pickle shared with every
    other run on the machine, and a stop that frees the port."""
    assert localstripe.base_url.startswith("http://127.0.0.1:")
    assert localstripe.state.is_relative_to(localstripe.log.parent)
    shared = Path("/tmp/localstripe.pickle")
    before = shared.stat().st_mtime_ns if shared.exists() else None

    with running(tmp_path / "own") as own:
        provider = StripeProvider(own.api_key, own.base_url)
        intent = hold(provider)
        assert own.state.exists()
        assert intent.id.encode() in own.state.read_bytes()
        port = int(own.base_url.rsplit(":", 1)[1])
        assert _listening(port) == ["127.0.0.1"]

    assert (shared.stat().st_mtime_ns if shared.exists() else None) == before
    with pytest.raises(ProviderUnavailable):
        provider.retrieve(intent.id)


def _listening(port: int) -> list[str]:
    """The addresses a socket listens on at `port`, as Linux lists them (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
                found.append(socket.inet_ntop(family, words))
    return found


def test_the_events_localstripe_does_not_send_can_be_made_from_its_state(
    provider: StripeProvider, localstripe: Localstripe
) -> None:
    """tests/localstripe.py `missing_event`: what an end-to-end test posts to Kitchen in
    place of Stripe's payment_intent.amount_capturable_updated."""
    intent = authorized(provider, localstripe, 990)

    body, header = missing_event(localstripe.base_url, intent.id, providers.AUTHORIZED, SECRET)

    event = parse_event(body, header, SECRET)
    assert (event.type, event.intent.id, event.intent.status) == (
        providers.AUTHORIZED,
        intent.id,
        providers.REQUIRES_CAPTURE,
    )
    assert (event.intent.amount, event.intent.order_id) == (990, intent.order_id)
