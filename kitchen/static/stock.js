// The stock moves of the day on each ingredient: Restock (a delivery), Count (the
// end-of-day count, which records the difference from the books) and Waste. Each calls
// POST /ingredients/{id}/restock, /count or /waste as curl users do.
"use strict";

(function () {
  const K = window.Kitchen;
  const { el, button, amount, change, wholeNumber } = K;

  // What each move asks and says. `amount` is what the API records for it.
  const MOVES = {
    restock: {
      button: "Restock",
      title: (i) => "Restock " + i.name,
      intro: (i) => "A delivery: the amount received is added to the " + amount(i.stock, i.unit) + " in stock.",
      amountLabel: "Amount received",
      noteLabel: "Note (supplier, delivery note)",
      submit: "Add to stock",
      done: (i, after) => "Restocked " + i.name + ": " + change(after.stock - i.stock, i.unit) +
        ", now " + amount(after.stock, i.unit) + ".",
    },
    count: {
      button: "Count",
      title: (i) => "Count " + i.name,
      intro: (i) => "What is really there: the stock becomes the amount counted, and the " +
        "difference from the books (" + amount(i.stock, i.unit) + ") is recorded.",
      amountLabel: "Counted amount",
      noteLabel: "Note",
      submit: "Record count",
      done: (i, after, variance) => "Counted " + i.name + ": " + amount(after.stock, i.unit) + ", " +
        (variance === 0 ? "as the books said." : change(variance, i.unit) + " against the books."),
    },
    waste: {
      button: "Waste",
      title: (i) => "Waste of " + i.name,
      intro: (i) => "Spoiled, dropped or out of date: taken out of the " + amount(i.stock, i.unit) + " in stock.",
      amountLabel: "Amount wasted",
      noteLabel: "Reason",
      noteHint: "For example: spoiled, dropped, out of date",
      noteRequired: true,
      submit: "Record waste",
      done: (i, after) => "Recorded waste of " + i.name + ": " + change(after.stock - i.stock, i.unit) +
        ", now " + amount(after.stock, i.unit) + ".",
    },
  };

  // The API's field names, as the form calls them.
  const FIELDS = { grams: "amount", amount: "amount", note: "note" };

  function open(kind, li) {
    const move = MOVES[kind];
    const before = li.item;
    K.openForm({
      title: move.title(before),
      intro: move.intro(before),
      submit: move.submit,
      fields: [
        { name: "amount", label: move.amountLabel, type: "number", unit: before.unit || "g", required: true },
        { name: "note", label: move.noteLabel, type: "text", hint: move.noteHint },
      ],
      fieldOf: (field) => FIELDS[field] || null,
      send: async (values) => {
        if (move.noteRequired && !values.note) {
          // Said before asking Kitchen, in the same place as the API's reasons.
          return { ok: false, status: 422, data: { errors: [{ field: "note", message: "say why it was wasted" }] } };
        }
        const body = { amount: wholeNumber(values.amount) };
        if (values.note) body.note = values.note;
        return K.api("POST", "/ingredients/" + before.id + "/" + kind, body);
      },
      done: (result) => {
        const after = result.data;
        // The ledger row the move wrote says the difference; else the stock before.
        const variance = after.change ? after.change.amount ?? after.change.grams : after.stock - before.stock;
        if (kind === "count") {
          const note = li.querySelector(".row-note");
          note.textContent = "Counted " + K.clock.format(new Date()) + ": " +
            (variance === 0 ? "no difference" : change(variance, before.unit) + " against the books");
        }
        return move.done(before, after, variance);
      },
    });
  }

  K.features.push({
    ingredient(li) {
      const actions = li.querySelector(".row-actions");
      if (actions.querySelector(".stock-move")) return;
      li.insertBefore(el("p", "row-note"), actions);
      for (const kind of Object.keys(MOVES)) {
        const b = button(MOVES[kind].button, "quiet stock-move " + kind, () => open(kind, li));
        // Read with the ingredient's name: "Restock, button, beef".
        b.setAttribute("aria-describedby", li.querySelector(".name").id);
        actions.append(b);
      }
    },
  });
})();
