// Kitchen's stock dashboard: polls GET /dashboard every 2 s and draws it. Plain script,
// no build step. The merchant's key lives in this tab's sessionStorage and travels only
// in the Authorization header: never in a URL, never in the page's history, never logged.
// Everything from the server is put in with textContent, never as HTML.
"use strict";

(function () {
  const EVERY_MS = 2000;
  const STORE = "kitchen.key";
  const production = document.body.dataset.env === "production";
  const $ = (id) => document.getElementById(id);
  const number = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const number1 = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const clock = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const day = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });

  let timer = null;
  let polling = false;

  // -- formatting -------------------------------------------------------------------------

  // Grams as people read them: "480 g", "4.94 kg", "19.7 kg", "250 kg".
  function grams(g) {
    if (Math.abs(g) < 1000) return number.format(g) + " g";
    const kg = g / 1000;
    return (Math.abs(kg) < 100 ? number : number1).format(kg) + " kg";
  }

  function percent(fraction) {
    return number1.format(fraction * 100) + " %";
  }

  function when(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    const today = new Date().toDateString() === at.toDateString();
    return today ? clock.format(at) : day.format(at) + " " + clock.format(at);
  }

  // Digits after the point of currencies whose minor unit is not the hundredth
  // (ISO 4217); every other currency has 2.
  const EXPONENTS = new Map([
    ["BIF", 0], ["CLP", 0], ["DJF", 0], ["GNF", 0], ["ISK", 0], ["JPY", 0], ["KMF", 0],
    ["KRW", 0], ["PYG", 0], ["RWF", 0], ["UGX", 0], ["VND", 0], ["VUV", 0], ["XAF", 0],
    ["XOF", 0], ["XPF", 0],
    ["BHD", 3], ["IQD", 3], ["JOD", 3], ["KWD", 3], ["LYD", 3], ["OMR", 3], ["TND", 3],
  ]);

  // An amount in minor units (integer cents) as people read it: "12.50 EUR",
  // "1,200 JPY". Integer division and remainder, never a float: 1999 cents is 19.99.
  function money(minor, currency) {
    const code = String(currency || "").toUpperCase();
    const digits = EXPONENTS.has(code) ? EXPONENTS.get(code) : 2;
    const scale = 10n ** BigInt(digits);
    const value = BigInt(minor);
    const size = value < 0n ? -value : value;
    const whole = number.format(size / scale);
    const part = digits ? "." + (size % scale).toString().padStart(digits, "0") : "";
    return (value < 0n ? "-" : "") + whole + part + " " + code;
  }

  // A status as words: "awaiting_payment" -> "awaiting payment".
  function words(status) {
    return String(status).replace(/_/g, " ");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function timeEl(iso, className) {
    const node = el("time", className, when(iso));
    node.dateTime = iso || "";
    return node;
  }

  // -- drawing ----------------------------------------------------------------------------

  // One row per ingredient, kept across refreshes (so the bar glides to its new width).
  function drawIngredients(list) {
    const ul = $("ingredients");
    const rows = new Map([...ul.children].map((li) => [li.dataset.id, li]));
    list.forEach((ing, index) => {
      let li = rows.get(String(ing.id));
      if (!li) {
        li = el("li", "ingredient");
        li.dataset.id = String(ing.id);
        const head = el("div", "head");
        head.append(el("span", "name"), el("span", "amount"), el("span", "flag"));
        const track = el("div", "track");
        track.setAttribute("role", "meter");
        track.setAttribute("aria-valuemin", "0");
        track.append(el("div", "fill"), el("div", "mark"));
        li.append(head, track, el("div", "detail"));
      }
      rows.delete(String(ing.id));
      // full_stock is the par level: the stock may stand above it (a delivery, a count).
      // The bar stops at full; the text says how far above par it is (e.g. 145 %).
      const full = Math.max(ing.full_stock, 1);
      const ofPar = Math.max(ing.stock / full, 0);
      const level = Math.min(ofPar, 1);
      const low = Boolean(ing.low);
      li.dataset.ingredient = ing.name;
      li.classList.toggle("low", low);
      li.querySelector(".name").textContent = ing.name;
      li.querySelector(".amount").textContent = grams(ing.stock) + " of " + grams(ing.full_stock);
      const flag = li.querySelector(".flag");
      flag.textContent = low ? "low" : "ok";
      const track = li.querySelector(".track");
      track.setAttribute("aria-label", ing.name + " stock");
      track.setAttribute("aria-valuemax", String(ing.full_stock));
      track.setAttribute("aria-valuenow", String(ing.stock));
      track.setAttribute(
        "aria-valuetext",
        grams(ing.stock) + " of " + grams(ing.full_stock) + (low ? ", low" : ""),
      );
      li.querySelector(".fill").style.width = (level * 100).toFixed(2) + "%";
      const mark = li.querySelector(".mark");
      mark.style.left = (Math.min(ing.threshold, 1) * 100).toFixed(2) + "%";
      li.querySelector(".detail").textContent =
        percent(ofPar) + " of par · low below " + grams(Math.ceil(ing.threshold * ing.full_stock)) +
        " (" + percent(ing.threshold) + ")";
      if (ul.children[index] !== li) ul.insertBefore(li, ul.children[index] || null);
    });
    rows.forEach((li) => li.remove());
    $("ingredients-empty").hidden = list.length > 0;
  }

  function fillTable(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows);
    $(id).hidden = rows.length === 0;
    $(id + "-empty").hidden = rows.length > 0;
  }

  function drawProducts(products, names) {
    fillTable("products", products.map((p) => {
      const tr = el("tr");
      tr.dataset.product = p.name;
      const can = el("td", "num can-make", number.format(p.can_make));
      if (p.can_make === 0) {
        tr.classList.add("out");
        can.textContent = "0 · out";
      }
      const recipe = p.recipe
        .map((r) => grams(r.grams) + " " + (names.get(r.ingredient_id) || "ingredient " + r.ingredient_id))
        .join(", ");
      tr.append(el("th", "", p.name), can, el("td", "wide", recipe));
      tr.firstChild.scope = "row";
      return tr;
    }));
  }

  function drawOrders(orders, products) {
    fillTable("orders", orders.map((o) => {
      const tr = el("tr", "status-" + o.status);
      tr.dataset.order = String(o.id);
      const items = o.lines
        .map((l) => number.format(l.quantity) + " × " + (products.get(l.product_id) || "product " + l.product_id))
        .join(", ");
      const status = el("td", "status-cell");
      status.append(el("span", "badge " + o.status, words(o.status)));
      if (o.reason) status.append(el("span", "reason", o.reason));
      const placed = el("td");
      placed.append(timeEl(o.created_at));
      tr.append(
        el("td", "num", String(o.id)), placed, el("td", "", items), status, paymentCell(o.payment),
      );
      return tr;
    }));
    // A merchant without payments sees no empty Payment column.
    $("orders").classList.toggle("no-payments", !orders.some((o) => o.payment));
  }

  // What the cook needs of the payment: its state and amount ("captured · 12.50 EUR"),
  // and what was refunded; empty for an order without a payment (payments off).
  function paymentCell(p) {
    const td = el("td", "payment");
    if (!p) return td;
    td.dataset.payment = p.status;
    td.append(
      el("span", "payment-status", words(p.status)),
      document.createTextNode(" · "),
      el("span", "amount", money(p.amount, p.currency)),
    );
    if (p.refunded_amount) {
      td.append(el("span", "refunded", money(p.refunded_amount, p.currency) + " refunded"));
    }
    return td;
  }

  function drawAlerts(alerts) {
    const ul = $("alerts");
    ul.replaceChildren(...alerts.map((a) => {
      const li = el("li", "alert mail-" + a.mail);
      li.dataset.alert = String(a.id);
      const what = el("p", "what");
      what.append(
        el("strong", "", a.ingredient),
        document.createTextNode(
          " fell to " + grams(a.stock) + " of " + grams(a.full_stock) +
          " (below " + percent(a.threshold) + ")",
        ),
      );
      const meta = el("p", "meta");
      meta.append(document.createTextNode("raised "), timeEl(a.created_at), document.createTextNode(" · "));
      if (a.mail === "sent") {
        meta.append(el("span", "mail", "email sent "), timeEl(a.mail_sent_at));
      } else if (a.mail === "failed") {
        meta.append(el("span", "mail", "email failed (not retried)"));
      } else {
        meta.append(el("span", "mail", "email waiting"));
      }
      li.append(what, meta);
      return li;
    }));
    ul.hidden = alerts.length === 0;
    $("alerts-empty").hidden = alerts.length > 0;
  }

  function draw(data) {
    const ingredientNames = new Map(data.ingredients.map((i) => [i.id, i.name]));
    const productNames = new Map(data.products.map((p) => [p.id, p.name]));
    $("who").textContent = data.merchant.name + (key() ? "" : production ? "" : " (development: no key needed)");
    drawIngredients(data.ingredients);
    drawProducts(data.products, ingredientNames);
    drawOrders(data.orders, productNames);
    drawAlerts(data.alerts);
    $("board").hidden = false;
    const lows = data.ingredients.filter((i) => i.low).length;
    status("Updated " + clock.format(new Date()) + " · " +
      (lows ? lows + " low" : "nothing low") + " · refreshes every 2 s");
  }

  function status(text, bad) {
    $("status").textContent = text;
    $("status").classList.toggle("bad", Boolean(bad));
  }

  // -- the key and the login form ---------------------------------------------------------

  function key() {
    return sessionStorage.getItem(STORE) || "";
  }

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

  async function refresh() {
    if (polling) return;
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

  refresh();
})();
