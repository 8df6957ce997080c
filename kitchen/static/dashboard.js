// Kitchen's stock dashboard: polls GET /dashboard every 2 s and draws it. Plain script,
// no build step. The merchant's key lives in this tab's sessionStorage and travels only
// in the Authorization header: never in a URL, never in the page's history, never logged.
// Everything from the server is put in with textContent, never as HTML.
// Kitchen's dashboard: polls GET /dashboard every 2 s and draws it; each task of the day
// (stock.js, ingredients.js, menu.js, orders.js, history.js) adds its buttons through
// Kitchen.features. Plain script, no build step. The merchant's key lives in this tab's
// sessionStorage and travels only in the Authorization header: never in a URL, never in
// the page's history, never logged. Everything from the server is put in with
// textContent, never as HTML.
"use strict";

(function () {
  const K = window.Kitchen;
  const EVERY_MS = 2000;
  const STORE = K.STORE;
  const production = document.body.dataset.env === "production";
  const { $, el, timeEl, number, amount, percent, money, words, key, keyed } = K;

  let timer = null;
  let polling = false;

  // -- drawing ----------------------------------------------------------------------------

  // Each task's file gets its say on every row drawn (its buttons are made once, then
  // kept: see Kitchen.keyed).
  function features(hook, ...args) {
    for (const feature of K.features) if (feature[hook]) feature[hook](...args);
  }

  function makeIngredient() {
    const li = el("li", "ingredient");
    const head = el("div", "head");
    head.append(el("span", "name"), el("span", "amount"), el("span", "flag"));
    head.querySelector(".name").id = "";
    const track = el("div", "track");
    track.setAttribute("role", "meter");
    track.setAttribute("aria-valuemin", "0");
    track.append(el("div", "fill"), el("div", "mark"));
    li.append(head, track, el("div", "detail"), el("div", "row-actions"));
    return li;
  }

  function drawIngredient(li, ing, data) {
    const unit = ing.unit || "g";
    // full_stock is the par level: the stock may stand above it (a delivery, a count).
    // The bar stops at full; the text says how far above par it is (e.g. 145 %).
    const full = Math.max(ing.full_stock, 1);
    const ofPar = Math.max(ing.stock / full, 0);
    const level = Math.min(ofPar, 1);
    const low = Boolean(ing.low);
    const of = amount(ing.stock, unit) + " of " + amount(ing.full_stock, unit);
    li.dataset.ingredient = ing.name;
    li.dataset.id = String(ing.id);
    li.classList.toggle("low", low);
    const name = li.querySelector(".name");
    name.textContent = ing.name;
    name.id = "ingredient-" + ing.id + "-name";
    li.querySelector(".amount").textContent = of;
    li.querySelector(".flag").textContent = low ? "low" : "ok";
    const track = li.querySelector(".track");
    track.setAttribute("aria-label", ing.name + " stock");
    track.setAttribute("aria-valuemax", String(ing.full_stock));
    track.setAttribute("aria-valuenow", String(ing.stock));
    track.setAttribute("aria-valuetext", of + (low ? ", low" : ""));
    li.querySelector(".fill").style.width = (level * 100).toFixed(2) + "%";
    li.querySelector(".mark").style.left = (Math.min(ing.threshold, 1) * 100).toFixed(2) + "%";
    li.querySelector(".detail").textContent =
      percent(ofPar) + " of par · low below " + amount(Math.ceil(ing.threshold * ing.full_stock), unit) +
      " (" + percent(ing.threshold) + ")";
    features("ingredient", li, ing, data);
  }

  function drawIngredients(data) {
    keyed($("ingredients"), data.ingredients, (i) => i.id, makeIngredient,
      (li, ing) => drawIngredient(li, ing, data));
    $("ingredients-empty").hidden = data.ingredients.length > 0;
  }

  // A table's rows, keyed; the table hides when empty and says so below.
  function drawTable(id, items, make, update) {
    keyed($(id).querySelector("tbody"), items, (item) => item.id, make, update);
    $(id).hidden = items.length === 0;
    $(id + "-empty").hidden = items.length > 0;
  }

  function recipeText(recipe, ingredients) {
    return recipe.map((r) => {
      const ing = ingredients.get(r.ingredient_id);
      const unit = r.unit || (ing && ing.unit) || "g";
      const name = r.ingredient || (ing && ing.name) || "ingredient " + r.ingredient_id;
      return amount(r.amount !== undefined ? r.amount : r.grams, unit) + " " + name;
    }).join(", ");
  }

  function drawProducts(data, ingredients) {
    drawTable("products", data.products, () => {
      const tr = el("tr");
      const name = el("th", "product-name");
      name.scope = "row";
      const can = el("td", "num can-make");
      can.append(el("span", "count"), el("span", "limit"));
      tr.append(name, can, el("td", "wide recipe"), el("td", "row-actions"));
      return tr;
    }, (tr, p) => {
      tr.dataset.product = p.name;
      tr.querySelector(".product-name").textContent = p.name;
      tr.querySelector(".product-name").id = "product-" + p.id + "-name";
      tr.classList.toggle("out", p.can_make === 0);
      tr.querySelector(".count").textContent =
        number.format(p.can_make) + (p.can_make === 0 ? " · out" : "");
      // Which ingredient runs out first: what to order.
      const limit = p.limited_by != null ? ingredients.get(p.limited_by) : null;
      tr.querySelector(".limit").textContent = limit ? limit.name : "";
      tr.querySelector(".recipe").textContent = recipeText(p.recipe, ingredients);
      features("product", tr, p, data);
    });
  }

  function drawOrders(data, products) {
    drawTable("orders", data.orders, () => {
      const tr = el("tr");
      tr.append(el("td", "num order-id"), el("td", "placed"), el("td", "items"),
        el("td", "status-cell"), el("td", "payment"), el("td", "row-actions"));
      return tr;
    }, (tr, o) => {
      tr.className = "status-" + o.status;
      tr.dataset.order = String(o.id);
      tr.querySelector(".order-id").textContent = String(o.id);
      tr.querySelector(".order-id").id = "order-" + o.id + "-id";
      tr.querySelector(".placed").replaceChildren(timeEl(o.created_at));
      tr.querySelector(".items").textContent = o.lines
        .map((l) => number.format(l.quantity) + " \u00d7 " + (products.get(l.product_id) || "product " + l.product_id))
        .join(", ");
      const status = tr.querySelector(".status-cell");
      status.replaceChildren(el("span", "badge " + o.status, words(o.status)));
      if (o.reason) status.append(el("span", "reason", o.reason));
      drawPayment(tr.querySelector(".payment"), o.payment);
      features("order", tr, o, data);
    });
    // A merchant without payments sees no empty Payment column.
    $("orders").classList.toggle("no-payments", !data.orders.some((o) => o.payment));
  }

  // What the cook needs of the payment: its state and amount ("captured · 12.50 EUR"),
  // and what was refunded; empty for an order without a payment (payments off).
  function drawPayment(td, p) {
    td.replaceChildren();
    if (!p) {
      delete td.dataset.payment;
      return;
    }
    td.dataset.payment = p.status;
    td.append(
      el("span", "payment-status", words(p.status)),
      document.createTextNode(" · "),
      el("span", "amount", money(p.amount, p.currency)),
    );
    if (p.refunded_amount) {
      td.append(el("span", "refunded", money(p.refunded_amount, p.currency) + " refunded"));
    }
  }

  function drawAlerts(data, ingredients) {
    keyed($("alerts"), data.alerts, (a) => a.id, () => {
      const li = el("li", "alert");
      li.append(el("p", "what"), el("p", "cause"), el("p", "meta"));
      return li;
    }, (li, a) => {
      const unit = a.unit || (ingredients.get(a.ingredient_id) || {}).unit || "g";
      li.className = "alert mail-" + a.mail;
      li.dataset.alert = String(a.id);
      li.querySelector(".what").replaceChildren(
        el("strong", "", a.ingredient),
        document.createTextNode(
          " fell to " + amount(a.stock, unit) + " of " + amount(a.full_stock, unit) +
          " (below " + percent(a.threshold) + ")",
        ),
      );
      const meta = li.querySelector(".meta");
      meta.replaceChildren(document.createTextNode("raised "), timeEl(a.created_at), document.createTextNode(" · "));
      if (a.mail === "sent") {
        meta.append(el("span", "mail", "email sent "), timeEl(a.mail_sent_at));
      } else if (a.mail === "failed") {
        meta.append(el("span", "mail", "email failed (not retried)"));
      } else {
        meta.append(el("span", "mail", "email waiting"));
      }
      features("alert", li, a, data);
    });
    $("alerts").hidden = data.alerts.length === 0;
    $("alerts-empty").hidden = data.alerts.length > 0;
  }

  function draw(data) {
    K.data = data;
    const ingredients = new Map(data.ingredients.map((i) => [i.id, i]));
    const productNames = new Map(data.products.map((p) => [p.id, p.name]));
    $("who").textContent = data.merchant.name + (key() ? "" : production ? "" : " (development: no key needed)");
    drawIngredients(data);
    drawProducts(data, ingredients);
    drawOrders(data, productNames);
    drawAlerts(data, ingredients);
    features("board", data);
    $("board").hidden = false;
    const lows = data.ingredients.filter((i) => i.low).length;
    status("Updated " + K.clock.format(new Date()) + " · " +
      (lows ? lows + " low" : "nothing low") + " · refreshes every 2 s");
  }

  function status(text, bad) {
    $("status").textContent = text;
    $("status").classList.toggle("bad", Boolean(bad));
  }

  // -- the key and the login form ---------------------------------------------------------

  // The form, with `message` saying why. Polling stops until a key is accepted; after a
  // refused key the board is hidden, so no merchant's data stays on screen.
  function showLogin(message, hideBoard) {
    stop();
    $("login-message").textContent = message;
    $("login").hidden = false;
    if (hideBoard) {
      $("board").hidden = true;
      $("who").textContent = "";
    }
    $("login-cancel").hidden = production;
    status(hideBoard ? "Not signed in" : "Paused while you sign in");
    $("sign-in").hidden = true;
    $("sign-out").hidden = true;
    $("key").value = "";
    $("key").focus();
  }

  function signedIn() {
    $("login").hidden = true;
    $("login-message").textContent = "";
    $("sign-out").hidden = !key();
    $("sign-in").hidden = Boolean(key()) || production;
  }

  async function fetchDashboard(withKey) {
    const headers = { Accept: "application/json" };
    if (withKey) headers.Authorization = "Bearer " + withKey;
    return fetch("/dashboard", { headers, cache: "no-store", credentials: "omit" });
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const typed = $("key").value.trim();
    if (!typed) {
      $("login-message").textContent = "Enter your merchant API key.";
      return;
    }
    $("login-message").textContent = "Checking the key…";
    let response;
    try {
      response = await fetchDashboard(typed);
    } catch (err) {
      $("login-message").textContent = "Kitchen did not answer; try again in a moment.";
      return;
    }
    if (response.status === 401) {
      $("key").value = "";
      $("login-message").textContent =
        "That key was not accepted (401): check it and try again. " +
        "Keys start with kitchen_ and are shown once, when the merchant is created.";
      $("key").focus();
      return;
    }
    if (!response.ok) {
      $("login-message").textContent = "Kitchen answered " + response.status + "; try again.";
      return;
    }
    sessionStorage.setItem(STORE, typed);
    $("key").value = "";
    signedIn();
    draw(await response.json());
    schedule();
  });

  $("sign-in").addEventListener("click", () => {
    showLogin("Sign in with a merchant's API key to see that merchant's kitchen.", false);
  });

  // Development only: back to the default merchant without a key.
  $("login-cancel").addEventListener("click", () => {
    signedIn();
    refresh();
  });

  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    if (production) {
      showLogin("Signed out. Enter a merchant API key to see its kitchen.", true);
    } else {
      signedIn();
      refresh();
    }
  });

  // -- polling ----------------------------------------------------------------------------

  // A refresh asked while one is out runs once that one is back: what a form just
  // changed shows at once, not 2 s later.
  let again = false;

  async function refresh() {
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    const sent = key();
    try {
      const response = await fetchDashboard(sent);
      // The form opened while this fetch was out: it decides what comes next.
      if (!$("login").hidden) return;
      if (response.status === 401) {
        if (sent) sessionStorage.removeItem(STORE);
        showLogin(sent
          ? "Your key is no longer accepted (401): it may have been rotated. Enter the current key."
          : "This Kitchen needs a merchant API key. Enter yours to see your stock.", true);
        return;
      }
      if (!response.ok) throw new Error("Kitchen answered " + response.status);
      signedIn();
      draw(await response.json());
      schedule();
    } catch (err) {
      status("Not updated since the last refresh: " + (err.message || "Kitchen did not answer") +
        "; retrying every 2 s", true);
      schedule();
    } finally {
      polling = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!document.hidden) refresh(); else schedule();
    }, EVERY_MS);
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && $("login").hidden) refresh();
  });

  K.refresh = refresh;
  // An action refused for the key (rotated, revoked): sign in again; the form stays.
  // The next poll gets the 401 too, and opens the sign-in form.
  K.onUnauthorized = () => status("Your key was not accepted: sign in again.", true);

  refresh();
})();
