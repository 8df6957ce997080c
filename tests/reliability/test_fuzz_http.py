"""Fuzzing the HTTP API with hypothesis: zero 5xx, zero half-saved orders.

Every example is one request against one Kitchen started for the test (roles api and
relay: nothing processes orders, so stock and order status stay still). Properties:

- POST /order never answers 5xx, whatever the body, Content-Type or Idempotency-Key;
- a 201 comes only from a body sent as application/json, and adds exactly one order,
  exactly the posted lines and exactly one outbox row (or, replayed by its
  Idempotency-Key, adds nothing and names the first order);
- a 4xx is a problem document (application/problem+json with status, title, detail)
  and adds no order, order line or outbox row;
- GET /order/{id} never answers 5xx, whatever the id.

Runs are derandomized (same examples every run, no example database) so CI is stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app import Kitchen
from kitchen.db import session
from kitchen.http import is_json
from kitchen.models import Order, OrderLine, Outbox
from kitchen.settings import Orders

# Hypothesis runs hundreds of requests per test.
pytestmark = pytest.mark.slow

PRODUCT = 1  # the seeded Burger
MAX_LINES, MAX_QUANTITY = Orders().max_lines, Orders().max_quantity
MAX_BODY = 65536

# The fixture below is function-scoped, so hypothesis runs all examples of a test on the
# same Kitchen and database (HealthCheck.function_scoped_fixture). That is intended: every
# property is checked against the row counts read just before and just after its own
# request, so what earlier examples left in the database does not matter.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- strategies -------------------------------------------------------------------------

EDGE_INTS = [
    0,
    -1,
    2,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    MAX_QUANTITY,
    MAX_QUANTITY + 1,
]
ints = st.integers() | st.sampled_from(EDGE_INTS)
# floats() includes nan and +-inf: not JSON, but json.dumps writes NaN/Infinity and
# Python's json.loads (the server's parser) accepts them.
scalars = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Shaped like an order, with any JSON where the product ids and quantities go.
items = (
    st.fixed_dictionaries(
        {},
        optional={
            "product_id": json_values,
            "quantity": json_values,
            "note": json_values,
        },
    )
    | json_values
)
order_shaped = st.fixed_dictionaries(
    {"products": st.lists(items, max_size=5) | json_values},
    optional={"merchant": json_values},
)

# Plausible orders: mostly valid, with edge values on the boundaries of what is valid.
product_ids = st.one_of(
    st.just(PRODUCT),
    st.sampled_from([0, -1, PRODUCT + 1, 999, 2**31, 2**63 - 1, 2**63, 10**30]),
    st.sampled_from([True, float(PRODUCT), str(PRODUCT), None, [PRODUCT]]),
)
quantities = st.one_of(
    st.integers(1, MAX_QUANTITY),
    st.sampled_from([1, MAX_QUANTITY, MAX_QUANTITY + 1, 0, -1, 2**63, 10**30]),
    st.sampled_from([True, 1.0, 1.5, "1", None, float("nan"), float("inf")]),
)
valid_line = st.fixed_dictionaries(
    {"product_id": st.just(PRODUCT), "quantity": st.integers(1, MAX_QUANTITY)}
)
edgy_line = st.fixed_dictionaries({"product_id": product_ids, "quantity": quantities})
plausible_orders = st.builds(
    lambda lines: {"products": lines},
    st.one_of(
        st.lists(valid_line, min_size=1, max_size=4),
        st.lists(valid_line, min_size=1, max_size=4),
        st.lists(valid_line | edgy_line, min_size=1, max_size=4),
        # Around the most lines per order, all valid but for their number.
        st.integers(MAX_LINES - 1, MAX_LINES + 1).map(
            lambda n: [{"product_id": PRODUCT, "quantity": 1}] * n
        ),
    ),
)


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    """A JSON document as bytes: ASCII-escaped or not, in the encodings json.loads reads."""
    value = draw(values)
    text = json.dumps(value, allow_nan=True, ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"]))
    try:
        # surrogatepass: a lone surrogate in a str becomes invalid UTF-8, fuzz for free.
        return text.encode(encoding, "surrogatepass")
    except UnicodeError:
        return json.dumps(value, allow_nan=True).encode()


@st.composite
def truncated(draw: st.DrawFn, documents: st.SearchStrategy[bytes]) -> bytes:
    body = draw(documents)
    return body[: draw(st.integers(0, max(0, len(body) - 1)))]


@st.composite
def broken_utf8(draw: st.DrawFn, documents: st.SearchStrategy[bytes]) -> bytes:
    body = draw(documents)
    at = draw(st.integers(0, len(body)))
    bad = draw(st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
    return body[:at] + bad + body[at:]


ONE = b'{"products": [{"product_id": 1, "quantity": 1}]}'
NASTY_BODIES = [
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b"NaN",
    b"-Infinity",
    b"1e999",
    b'{"products": [{"product_id": 1e999, "quantity": 1}]}',
    b'{"products": [{"product_id": 1, "quantity": 1}]} trailing',
    b'{"products": [{"product_id": 1, "quantity": 1}], "products": []}',
    b"\x00" * 8,
    b"\xef\xbb\xbf" + ONE,
    ONE.decode().encode("utf-16-le"),
    b"[" * 10_000,
    b'{"a":' * 10_000,
    b"[" * 2_000 + b"]" * 2_000,
    b"1" * 5_000,  # over Python's 4300-digit limit for int()
    b'{"products": [{"product_id": ' + b"1" * 5_000 + b', "quantity": 1}]}',
    b'{"products": [{"product_id": 1, "quantity": ' + b"9" * 5_000 + b"}]}",
    b"[" + b"1," * (MAX_BODY // 2) + b"1]",  # over the body limit: 413
]
raw_bodies = st.one_of(
    st.binary(max_size=64),
    truncated(encoded(plausible_orders)),
    broken_utf8(encoded(plausible_orders)),
    st.sampled_from(NASTY_BODIES),
)
bodies = st.one_of(
    encoded(json_values),
    encoded(order_shaped),
    encoded(plausible_orders),
    encoded(plausible_orders),
    raw_bodies,
)


def header_bytes(text: str) -> bytes:
    """What a client can put in a header: latin-1 when it fits, else UTF-8 bytes (httpx
    itself refuses non-ASCII str values; bytes pass through untouched)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# No control characters but tab: HTTP servers (h11, httptools) refuse CR, LF, NUL and
# friends before the application ever sees the request.
def header_texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    chars = st.characters(blacklist_categories=["Cc", "Cs"]) | st.just("\t")
    return st.text(chars, min_size=min_size, max_size=max_size).map(header_bytes)


header_text = header_texts()
json_types = st.sampled_from([b"application/json", b"application/json; charset=utf-8"])
any_types = (
    st.none()
    | header_text
    | st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"application/json; charset=latin-1",
            b"application/problem+json",
            b"text/plain",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=xyz",
            b"",
            b"*/*",
        ]
    )
)
# Mostly JSON, so that bodies reach the parser; anything else is a 415.
content_types = st.sampled_from([json_types, json_types, json_types, any_types]).flatmap(
    lambda types: types
)
idempotency_keys = st.one_of(
    st.none(),
    st.none(),
    header_texts(min_size=1),
    header_texts(min_size=1),
    st.sampled_from(
        [
            b"",
            b"k",
            b"x" * 255,
            b"x" * 256,
            "\u00e9".encode("latin-1") * 255,
            "\u00e9".encode() * 128,  # 128 characters, 256 bytes: read as 256 latin-1 chars
            "\u2603".encode(),
            b"x" * 10_000,
        ]
    ),
)


@dataclass(frozen=True)
class Post:
    body: bytes
    content_type: bytes | None = b"application/json"  # None: no Content-Type header
    key: bytes | None = None

    def headers(self) -> dict[bytes, bytes]:
        headers = {}
        if self.content_type is not None:
            headers[b"content-type"] = self.content_type
        if self.key is not None:
            headers[b"idempotency-key"] = self.key
        return headers


posts = st.builds(Post, body=bodies, content_type=content_types, key=idempotency_keys)


# --- the Kitchen under test ---------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    first_order: int


@pytest.fixture
def api(make_kitchen: Callable[..., Kitchen]) -> Iterator[Api]:
    # No re-drive during the test: orders stay pending (no processing role), and the job
    # would add outbox rows for them after redrive_after_seconds, between two counts.
    kitchen = make_kitchen("api,relay", scheduler={"redrive_after_seconds": 24 * 3600})
    assert kitchen.settings.orders == Orders()
    with TestClient(kitchen.web_app()) as client:
        seeded = client.post("/order/seed")
        assert seeded.status_code == 201
        assert [p["id"] for p in seeded.json()["products"]] == [PRODUCT]
        first = client.post("/order", json={"products": [{"product_id": PRODUCT, "quantity": 1}]})
        assert first.status_code == 201
        yield Api(client, first.json()["id"])


Counts = tuple[int, int, int]


def counts() -> Counts:
    with session():
        return Order.select().count(), OrderLine.select().count(), Outbox.select().count()


def saved_lines(order_id: int) -> list[tuple[int, int]]:
    with session():
        rows = OrderLine.select().where(OrderLine.order == order_id).order_by(OrderLine.id)
        return [(ln.product_id, ln.quantity) for ln in rows]


def last_outbox_payload() -> Any:
    with session():
        row = Outbox.select().order_by(Outbox.id.desc()).get()
        return json.loads(row.payload)


def posted_lines(body: bytes) -> list[tuple[int, int]]:
    """The lines of a body the server accepted (json.loads reads it as the server did)."""
    return [(p["product_id"], p["quantity"]) for p in json.loads(body)["products"]]


def assert_problem(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]


# --- properties -----------------------------------------------------------------------------


@settings(FUZZ, max_examples=300)
@given(post=posts)
@example(post=Post(ONE))
@example(post=Post(ONE, None))
@example(post=Post(ONE, b"text/plain"))
@example(post=Post(ONE, key=b"fuzz-replay"))
@example(post=Post(NASTY_BODIES[-1], b"application/json"))
@example(post=Post(ONE.decode().encode("utf-16"), key="\u00e9t\u00e9".encode()))
@example(post=Post(b"[" * 10_000))
@example(post=Post(b"1" * 5_000))
@example(post=Post(b'{"products": [{"product_id": 9223372036854775808, "quantity": 1}]}'))
def test_post_order_never_5xx_and_saves_all_or_nothing(api: Api, post: Post) -> None:
    before = counts()
    response = api.client.post("/order", content=post.body, headers=post.headers())
    after = counts()
    assert response.status_code < 500, (response.status_code, response.text)
    event(f"status {response.status_code}")

    if response.status_code != 201:
        assert_problem(response)
        assert after == before, "a refused request saved rows"
        return
    assert post.content_type is not None and is_json(post.content_type.decode("latin-1"))

    lines = posted_lines(post.body)
    view = response.json()
    order_id = view["id"]
    assert view["lines"] == [{"product_id": p, "quantity": q} for p, q in lines]
    assert response.headers["location"] == f"/order/{order_id}"
    assert saved_lines(order_id) == lines
    if response.headers.get("idempotent-replayed") == "true":
        event("201 replayed")
        assert post.key is not None
        assert after == before, "a replayed request saved rows"
        return
    event("201 created" + (" with a key" if post.key is not None else ""))
    orders_, lines_, outbox_ = before
    assert after == (orders_ + 1, lines_ + len(lines), outbox_ + 1)
    assert last_outbox_payload()["id"] == order_id
    assert api.client.get(f"/order/{order_id}").json()["lines"] == view["lines"]

    if post.key is not None:
        again = api.client.post("/order", content=post.body, headers=post.headers())
        assert again.status_code == 201, (again.status_code, again.text)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == order_id
        assert counts() == after, "a replayed request saved rows"


@settings(FUZZ, max_examples=60)
@given(order=encoded(plausible_orders), key=header_texts(min_size=1, max_size=200))
def test_a_replayed_idempotency_key_returns_the_same_order(
    api: Api, order: bytes, key: bytes
) -> None:
    # Keys from earlier examples may come again with another order: make this one unique.
    key = (key + b"-" + str(counts()[0]).encode())[-255:]
    post = Post(order, key=key)
    first = api.client.post("/order", content=post.body, headers=post.headers())
    assert first.status_code < 500, (first.status_code, first.text)
    before = counts()
    again = api.client.post("/order", content=post.body, headers=post.headers())
    assert again.status_code == first.status_code, (again.status_code, again.text)
    assert counts() == before, "a replayed request saved rows"
    if first.status_code == 201:
        event("201")
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
    else:
        assert_problem(again)


order_ids = st.one_of(
    ints.map(str),
    st.integers(1, 3).map(str),
    st.text(max_size=20).map(lambda s: quote(s, safe="")),
    st.sampled_from(
        [
            "",
            "1.0",
            "1e3",
            "0x1",
            "+1",
            "-0",
            "%201",
            "\u0663",  # an Arabic-Indic digit three
            "\uff11",  # a fullwidth digit one
            "1%2F2",
            "%00",
            "0" * 50 + "1",
            "9" * 5_000,  # over Python's 4300-digit limit for int()
        ]
    ).map(lambda s: quote(s, safe="%")),
)


@settings(FUZZ, max_examples=150)
@given(order_id=order_ids)
@example(order_id="1")
@example(order_id=str(2**63))
@example(order_id="9" * 5_000)
def test_get_order_never_5xx(api: Api, order_id: str) -> None:
    response = api.client.get(f"/order/{order_id}")
    assert response.status_code < 500, (response.status_code, response.text)
    event(f"status {response.status_code}")
    if response.status_code == 200:
        assert response.json()["id"] == int(order_id)
    else:
        assert_problem(response)
