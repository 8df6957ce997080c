"""OrderEvent.applied, processing's formatted ORDER_APPLIED, is the text encode() makes."""

from __future__ import annotations

import pytest

from kitchen.events import OrderEvent


@pytest.mark.parametrize("order_id,merchant_id", [(1, 1), (12345, 7), (2**63 - 1, 2**62)])
def test_applied_is_what_encode_makes(order_id: int, merchant_id: int) -> None:
    text = OrderEvent.applied(order_id, merchant_id)
    assert text == OrderEvent(OrderEvent.APPLIED, order_id, merchant_id).encode()
    assert OrderEvent.decode(text.encode()) == OrderEvent(OrderEvent.APPLIED, order_id, merchant_id)
