"""The stock dashboard: the page at `GET /` and the JSON it polls (`GET /dashboard`).

The page is plain HTML with one small script and one stylesheet, both served by Kitchen
from `kitchen/static/` (no build step, nothing from another site). It holds no data: a
browser cannot send `Authorization` when it navigates, so the script fetches
`/dashboard` with the merchant's key (kept in the tab's sessionStorage, sent only as
`Authorization: Bearer`) every 2 s and draws what it gets. In development a keyless
fetch acts as the default merchant, as every other endpoint does.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from kitchen import inventory, menu, merchants, views

STATIC = Path(__file__).parent / "static"

# Rows of the orders and alerts lists on the page.
RECENT = 20

# Only this origin's script, style and fetches; no framing, no plugins, no <base> tricks.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def data(merchant_id: int, rules: inventory.AlertRules) -> dict[str, Any]:
    """GET /dashboard: what the page shows, in one answer."""
    merchant = merchants.get(merchant_id, rules.default_threshold)
    return {
        "merchant": {"id": merchant["id"], "name": merchant["name"]},
        "ingredients": inventory.all_of(merchant_id, rules),
        "products": menu.all_of(merchant_id),
        "orders": views.recent_orders(merchant_id, RECENT, None),
        "alerts": views.recent_alerts(merchant_id, RECENT, None),
    }


def page(production: bool) -> str:
    """The page's HTML. `production` only changes what it says before the first fetch."""
    env = "production" if production else "development"
    return PAGE.replace("{env}", escape(env))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kitchen</title>
<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
<!-- In this order: the shared parts, one file per task of the day, then the board. -->
<script src="/static/kitchen.js" defer></script>
<script src="/static/stock.js" defer></script>
<script src="/static/ingredients.js" defer></script>
<script src="/static/forecast.js" defer></script>
<script src="/static/menu.js" defer></script>
<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>
<script src="/static/history.js" defer></script>
<script src="/static/orders.js" defer></script>
<script src="/static/dashboard.js" defer></script>
</head>
<body data-env="{env}">
<header class="top">
  <div>
    <h1>Kitchen</h1>
    <p id="who" class="who"></p>
  </div>
  <div class="actions">
    <p id="status" class="status" role="status" aria-live="polite">Loading…</p>
    <p id="said" class="said" role="status" aria-live="polite"></p>
    <button type="button" id="sign-in" hidden>Sign in with a key</button>
    <button type="button" id="sign-out" hidden>Sign out</button>
  </div>
</header>
<noscript><p class="notice">This page needs JavaScript to load the stock.</p></noscript>

<section id="login" class="login" hidden aria-labelledby="login-title">
  <h2 id="login-title">Sign in</h2>
  <p id="login-message" class="login-message" role="alert"></p>
  <form id="login-form" method="post" action="/" autocomplete="off">
    <label for="key">Merchant API key</label>
    <div class="row">
      <input id="key" name="key" type="password" required autocomplete="off"
             spellcheck="false" autocapitalize="off">
      <button type="submit">Show my kitchen</button>
      <button type="button" id="login-cancel" class="quiet" hidden>Cancel</button>
    </div>
  </form>
  <p class="hint">The key stays in this browser tab (sessionStorage) until you sign out or
  close the tab, and is sent only in the Authorization header.</p>
</section>

<main id="board" class="board" hidden>
  <section class="panel stock" aria-labelledby="stock-title">
    <div class="panel-head"><h2 id="stock-title">Stock</h2>
    <div id="stock-actions" class="panel-actions"></div></div>
    <p class="legend"><span class="legend-mark" aria-hidden="true"></span> threshold:
    below it an ingredient is <strong>low</strong> and an alert email goes out</p>
    <ul id="ingredients" class="bars"></ul>
    <p id="ingredients-empty" class="empty" hidden>No ingredients yet.</p>
  </section>
  <section class="panel to-order" aria-labelledby="to-order-title">
    <h2 id="to-order-title">To order</h2>
    <p class="legend">What brings each back to its par level once the delivery comes,
    at the recent pace, in whole packs; most urgent first.</p>
    <table id="to-order">
      <thead><tr><th scope="col">Ingredient</th><th scope="col" class="num">Order</th>
      <th scope="col">Packs</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="to-order-empty" class="empty" hidden>Nothing to order.</p>
  </section>
  <section class="panel" aria-labelledby="products-title">
    <div class="panel-head"><h2 id="products-title">Products</h2>
    <div id="products-actions" class="panel-actions"></div></div>
    <table id="products">
      <thead><tr><th scope="col">Product</th><th scope="col" class="num">Can make</th>
      <th scope="col" class="wide">Recipe (each)</th>
      <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="products-empty" class="empty" hidden>No products yet.</p>
  </section>
  <section class="panel" aria-labelledby="alerts-title">
    <h2 id="alerts-title">Alerts</h2>
    <ul id="alerts" class="alerts"></ul>
    <p id="alerts-empty" class="empty" hidden>No alerts yet.</p>
  </section>
  <section class="panel orders" aria-labelledby="orders-title">
    <div class="panel-head"><h2 id="orders-title">Latest orders</h2>
    <div id="orders-actions" class="panel-actions"></div></div>
    <table id="orders">
      <thead><tr><th scope="col" class="num">#</th><th scope="col">Placed</th>
      <th scope="col">Items</th><th scope="col">Status</th>
      <th scope="col" class="payment">Payment</th>
      <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="orders-empty" class="empty" hidden>No orders yet.</p>
  </section>
</main>
</body>
</html>
"""
