"""The payment cycle against localstripe (a stateful Stripe emulator), through the whole
of Kitchen: the Stripe adapter makes the hold, a till confirms the card at "Stripe",
Stripe's signed webhooks reach Kitchen over HTTP, the payments role captures and
refunds at "Stripe". What localstripe does not send (the authorization event) the test
sends as Stripe would, signed with the same secret (tests/localstripe.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app import Kitchen
from kitchen import providers
from kitchen.db import session
from kitchen.models import Ingredient, PaymentEvent
from kitchen.stripe_provider import StripeProvider
from tests.helpers import Seeded, eventually, seed_reference, serve, stock_after
from tests.localstripe import DECLINED, Localstripe, confirm, missing_event

SECRET = "whsec_kitchen_e2e_0123456789"
PRICE = 1250


@pytest.fixture
def stripe_kitchen(
    make_kitchen: Callable[..., Kitchen], localstripe: Localstripe
) -> Iterator[tuple[httpx.Client, Seeded]]:
    """An all-roles Kitchen served over HTTP, paying through localstripe, which posts its
    webhooks to it; the reference kitchen seeded, requiring payments."""
    kitchen = make_kitchen(
        payments={
            "provider": "stripe",
            "stripe_api_key": localstripe.api_key,
            "stripe_api_base": localstripe.base_url,
            "webhook_secret": SECRET,
        }
    )
    with serve(kitchen.web_app()) as base, httpx.Client(base_url=base, timeout=30) as api:
        registered = httpx.post(
            f"{localstripe.base_url}/_config/webhooks/kitchen-e2e",
            data={"url": f"{base}/payments/webhook", "secret": SECRET},
            timeout=10,
        )
        registered.raise_for_status()
        seeded = seed_reference(api)
        assert api.patch("/merchant", json={"payments": "required"}).status_code == 200
        assert api.patch(f"/products/{seeded.burger}", json={"price": PRICE}).status_code == 200
        yield api, seeded


def get(api: httpx.Client, order_id: int) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/order/{order_id}").json()
    return body


def stock() -> dict[str, int]:
    with session():
        return {i.name: i.stock for i in Ingredient.select()}


def test_a_card_held_at_stripe_is_captured_after_cooking_and_refunded(
    stripe_kitchen: tuple[httpx.Client, Seeded], localstripe: Localstripe
) -> None:
    api, seeded = stripe_kitchen
    r = api.post("/order", json=seeded.order(2))
    assert r.status_code == 201, r.text
    order = r.json()
    intent_id = order["payment"]["id"]
    assert intent_id.startswith("pi_") and order["payment"]["provider"] == "stripe"
    assert order["status"] == "awaiting_payment" and order["payment"]["amount"] == 2 * PRICE

    assert confirm(localstripe.base_url, intent_id).status_code == 200  # the till's card
    body, header = missing_event(localstripe.base_url, intent_id, providers.AUTHORIZED, SECRET)
    r = api.post("/payments/webhook", content=body, headers={"Stripe-Signature": header})
    assert r.status_code == 200, r.text

    eventually(lambda: get(api, order["id"])["payment"]["status"] == "captured")
    assert get(api, order["id"])["status"] == "applied"
    assert stock() == stock_after(2)
    stripe = StripeProvider(localstripe.api_key, localstripe.base_url)
    assert stripe.retrieve(intent_id).status == providers.SUCCEEDED
    assert stripe.retrieve(intent_id).amount_received == 2 * PRICE

    r = api.post(f"/order/{order['id']}/refund", json={"amount": 500, "reason": "cold"})
    assert r.status_code == 202, r.text
    eventually(lambda: get(api, order["id"])["payment"]["status"] == "partially_refunded")
    assert get(api, order["id"])["payment"]["refunded_amount"] == 500
    assert stripe.retrieve(intent_id).amount_refunded == 500  # refunded at "Stripe", once
    # localstripe's own signed payment_intent.succeeded reached Kitchen's webhook too.
    with session():
        kinds = {e.type for e in PaymentEvent.select()}
    assert providers.SUCCEEDED_EVENT in kinds


def test_a_card_declined_at_stripe_cancels_the_order(
    stripe_kitchen: tuple[httpx.Client, Seeded], localstripe: Localstripe
) -> None:
    api, seeded = stripe_kitchen
    order = api.post("/order", json=seeded.order(1)).json()
    intent_id = order["payment"]["id"]
    assert confirm(localstripe.base_url, intent_id, DECLINED).status_code == 402
    # localstripe posts payment_intent.payment_failed, signed, to Kitchen's webhook.
    eventually(lambda: get(api, order["id"])["status"] == "cancelled")
    assert get(api, order["id"])["payment"]["status"] == "failed"
    assert "declined" in get(api, order["id"])["reason"]
    assert stock() == stock_after(0)
