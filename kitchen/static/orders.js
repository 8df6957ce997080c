// Orders from the page: New order (products by name and quantities) -> POST /order, with
// an Idempotency-Key made when the form opens, so that sending again after a lost answer
// finds the same order; Cancel order on an order the kitchen has not applied yet ->
// POST /order/{id}/cancel after a confirmation; Refund on a paid order (amount typed as
// money, the stock put back or not) -> POST /order/{id}/refund. The same calls curl users
// make; amounts of money stay integer minor units (cents) from the typed text on.
"use strict";

(function () {
  const K = window.Kitchen;
  const { button, money, words, wholeNumber } = K;

  // An order can be cancelled until the kitchen applies it; a payment refunded once
  // its money was taken (and while some is left).
  const CANCELLABLE = new Set(["pending", "awaiting_payment"]);
  const REFUNDABLE = new Set(["captured", "partially_refunded"]);

  function productName(id) {
    const found = ((K.data && K.data.products) || []).find((p) => p.id === id);
    return found ? found.name : "product " + id;
  }

  function itemsText(order) {
    return order.lines
      .map((l) => K.number.format(l.quantity) + " \u00d7 " + productName(l.product_id))
      .join(", ");
  }

  // A key for POST /order's Idempotency-Key: random, from the browser's generator (which,
  // unlike crypto.randomUUID, works on a plain-http address in the kitchen's network too).
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return "page-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The same API answer with its problem rewritten: `fix(problem)` -> a new problem.
  function reworded(result, fix) {
    if (result.ok || !result.data) return result;
    return { ...result, data: fix(result.data) };
  }

  // -- New order ------------------------------------------------------------------------

  // The order's lines, inside the form: a product picked by name and a quantity each,
  // with their own labels ("Product 2", "Quantity 2") and Kitchen's reasons beside them.
  function orderLines() {
    return K.lineList({
      name: "The order's lines",
      className: "order-lines",
      empty: "Nothing is on the menu yet: add a product first.",
      options: ((K.data && K.data.products) || []).map((p) => [p.id, p.name]),
      choose: "Choose a product",
      pickLabel: (n) => "Product " + n,
      numberLabel: (n) => "Quantity " + n,
      number: "1",
      add: "Add a line",
      keepOne: true,
      field: "products",
      parts: { product_id: "pick", quantity: "number" },
      words: (message, entry) => lineWords(message, Number(entry.pick)),
      // Under the lines, openForm says only what is about the whole order.
      summary: () => "",
    });
  }

  // Kitchen's reason about a line, in a cook's words (the product by its name).
  function lineWords(message, productId) {
    const name = productName(productId);
    const text = String(message);
    if (/^unknown product/.test(text)) {
      return name + " is no longer on the menu: choose another product";
    }
    if (/has no price/.test(text)) {
      return name + " has no price: give it one (Edit on " + name + ") to sell it while payments are on";
    }
    const most = /^must be at most (\d+)/.exec(text);
    if (most) return "at most " + K.number.format(Number(most[1])) + " in one order";
    return K.friendly(text);
  }

  // Kitchen's reasons about the order as a whole, in a cook's words; null: as they are.
  function orderWords(result) {
    const problem = result.data || {};
    if (result.status === 422 && problem.title === "Idempotency-Key reused") {
      return "An order was already placed from this form with other lines (its answer was " +
        "lost): look at the latest orders. Placing it again now makes a second order.";
    }
    if (result.status === 402) {
      const why = /refused the payment: ([^;]*)/.exec(problem.detail || "");
      return "The card was refused" + (why ? " (" + why[1] + ")" : "") +
        ": nothing was charged and the order is cancelled.";
    }
    if (result.status === 503 && /payment provider/.test(problem.detail || "")) {
      // (Kitchen.explain adds "Try again in a moment." to a 503.)
      return "The card could not be held (the payment provider did not answer): nothing was " +
        "charged and the order is cancelled.";
    }
    return null;
  }

  function newOrder() {
    let key = newKey();
    const lines = orderLines();
    const form = K.openForm({
      title: "New order",
      intro: "The kitchen makes it once it is placed (when payments are on, once the card is held).",
      submit: "Place order",
      fields: [{ name: "lines", label: "Lines", type: "custom", render: lines.render }],
      fieldOf: (field) => (/^products/.test(field) ? "lines" : null),
      send: async (values) => {
        lines.clear();
        const chosen = values.lines;
        let result;
        if (chosen.some((l) => !l.pick)) {
          // Said before asking Kitchen, where Kitchen's reason would be.
          const errors = [];
          chosen.forEach((l, i) => {
            const field = "products[" + i + "].product_id";
            if (!l.pick) errors.push({ field, message: "choose a product" });
          });
          result = { ok: false, status: 422, data: { errors } };
        } else {
          const products = chosen.map((l) => ({
            product_id: Number(l.pick), quantity: wholeNumber(l.number),
          }));
          result = await K.api("POST", "/order", { products }, { "Idempotency-Key": key });
        }
        if (result.ok) return result;
        const said = orderWords(result);
        if (said) {
          // Kitchen freed the key (402, 503) or holds it for another order (reused): a
          // deliberate second send is a new order. The cancelled one shows behind.
          key = newKey();
          K.refresh();
          return reworded(result, () => ({ detail: said }));
        }
        return reworded(result, (problem) => ({ ...problem, errors: lines.reasons(problem.errors, chosen) }));
      },
      done: (result) => {
        const o = result.data;
        const p = o.payment;
        const waiting = p && o.status === "awaiting_payment";
        return "Order #" + o.id + " placed: " + itemsText(o) +
          (waiting ? ", waiting for the card (" + money(p.amount, p.currency) + ")." : ".");
      },
    });
  }

  // -- Cancel order ---------------------------------------------------------------------

  function cancel(tr) {
    const o = tr.item;
    const p = o.payment;
    const released = p
      ? "; the card's hold of " + money(p.amount, p.currency) + " is released: nothing is charged."
      : ".";
    K.openForm({
      title: "Cancel order #" + o.id + "?",
      intro: itemsText(o) + ". The kitchen will not make it" + released,
      submit: "Yes, cancel the order",
      fields: [{ name: "reason", label: "Reason (optional)", type: "text", hint: "For example: guest left" }],
      fieldOf: (field) => (field === "reason" ? "reason" : null),
      send: async (values) => {
        const body = values.reason ? { reason: values.reason } : {};
        const result = await K.api("POST", "/order/" + o.id + "/cancel", body);
        if (result.status !== 409) return result;
        K.refresh(); // the row behind shows what the order became
        return reworded(result, (problem) => {
          const detail = String(problem.detail || "");
          if (/applied/.test(detail)) {
            return { detail: "The kitchen has applied order #" + o.id + " meanwhile: it can no " +
              "longer be cancelled. Refund it instead." };
          }
          const now = detail.replace(/^order \d+ is /, "it is ");
          return { detail: "Order #" + o.id + " can no longer be cancelled: " + now + "." };
        });
      },
      done: (result) =>
        "Order #" + o.id + " cancelled" + (result.data.payment ? ": nothing is charged." : "."),
    });
  }

  // -- Refund ---------------------------------------------------------------------------

  function refund(tr) {
    const o = tr.item;
    const p = o.payment;
    const currency = p.currency;
    const left = p.amount - (p.refunded_amount || 0);
    const said = (minor) => money(minor, currency);
    const form = K.openForm({
      title: "Refund order #" + o.id,
      intro: itemsText(o) + ". Paid " + said(p.amount) +
        (p.refunded_amount ? ", " + said(p.refunded_amount) + " refunded already" : "") +
        ": " + said(left) + " can be refunded.",
      submit: "Refund now",
      fields: [
        {
          name: "amount", label: "Amount (" + currency + ")", type: "text",
          value: K.typedMoney(left, currency),
        },
        {
          name: "restock", label: "Put the stock back", type: "checkbox",
          hint: "With a full refund only: the order's ingredients go back into stock " +
            "(food not made or not used).",
        },
        { name: "reason", label: "Reason (optional)", type: "text" },
      ],
      fieldOf: (field) => ({ amount: "amount", restock: "restock", reason: "reason" }[field] || null),
      send: async (values) => {
        const cents = K.minorUnits(values.amount, currency);
        if (cents === null || cents <= 0) {
          const message = values.amount
            ? "enter an amount such as " + K.typedMoney(1250, currency)
            : "fill this in";
          return { ok: false, status: 422, data: { errors: [{ field: "amount", message }] } };
        }
        const body = { amount: cents, restock: values.restock };
        if (values.reason) body.reason = values.reason;
        const result = await K.api("POST", "/order/" + o.id + "/refund", body);
        if (result.status === 409) K.refresh(); // the row behind shows the payment now
        return reworded(result, (problem) => {
          const errors = (problem.errors || []).map((e) => ({ ...e, message: refundWords(e, p) }));
          let detail = problem.detail;
          const state = /payment is (\w+), not captured/.exec(detail || "");
          if (state) {
            detail = "The payment of order #" + o.id + " is " + words(state[1]) +
              " now: there is nothing to refund.";
          }
          return { ...problem, errors, detail };
        });
      },
      done: (result) => {
        const r = result.data;
        return "Refund of " + said(r.amount) + " asked for order #" + o.id +
          (r.restock ? ", its ingredients are back in stock" : "") +
          ": the payment shows it once the provider has made it.";
      },
    });
    // Money has a decimal point: a phone's keypad should offer it.
    const amount = form.form.elements.namedItem("amount");
    amount.inputMode = "decimal";
    amount.autocomplete = "off";
  }

  // Kitchen's reason about a refund's field, in money as the cook reads it.
  function refundWords(error, p) {
    const said = (minor) => money(minor, p.currency);
    let m = /^must be from 1 to (\d+): \d+ of the (\d+) captured/.exec(error.message);
    if (m) return "at most " + said(Number(m[1])) + " is left to refund (of " + said(Number(m[2])) + " paid)";
    m = /^nothing is left to refund of the (\d+) captured/.exec(error.message);
    if (m) return "nothing is left to refund: all " + said(Number(m[1])) + " went back already";
    if (error.field === "restock" && /^only with a full refund/.test(error.message)) {
      return "only with a full refund: refund all " + said(p.amount) + " to put the stock back";
    }
    return error.message;
  }

  // -- the buttons ----------------------------------------------------------------------

  K.features.push({
    board() {
      const actions = K.$("orders-actions");
      if (actions.querySelector(".new-order")) return;
      actions.append(button("New order", "new-order", newOrder));
    },
    order(tr, o) {
      const actions = tr.querySelector(".row-actions");
      let cancelButton = actions.querySelector(".cancel-order");
      let refundButton = actions.querySelector(".refund");
      if (!cancelButton) {
        // Read with the order: "Cancel order, button, 12, 2 × Burger".
        const items = tr.querySelector(".items");
        items.id = "order-" + o.id + "-items";
        const about = tr.querySelector(".order-id").id + " " + items.id;
        cancelButton = button("Cancel order", "quiet cancel-order", () => cancel(tr));
        refundButton = button("Refund", "quiet refund", () => refund(tr));
        cancelButton.setAttribute("aria-describedby", about);
        refundButton.setAttribute("aria-describedby", about);
        actions.append(cancelButton, refundButton);
      }
      cancelButton.hidden = !CANCELLABLE.has(o.status);
      refundButton.hidden = !(o.payment && REFUNDABLE.has(o.payment.status) &&
        o.payment.amount > (o.payment.refunded_amount || 0));
    },
  });
})();
