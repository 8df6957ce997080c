// The menu: Add product (name, price in the merchant's currency, the recipe: each
// ingredient picked by its name with the amount one portion takes, in its unit), Edit
// on each product (the same form, filled in) and Remove (after a confirmation). Each
// calls POST /products, PATCH /products/{id} or DELETE /products/{id} as curl users do.
"use strict";

(function () {
  const K = window.Kitchen;
  const { button, amount, money, unitLabel, wholeNumber } = K;

  // What a recipe line's amount is called in the request (`grams` is its older name).
  const AMOUNT = "amount";

  // -- the merchant: currency and payments, asked once when a form opens -------------------

  async function merchant() {
    const result = await K.api("GET", "/merchant");
    return result.ok && result.data ? { ok: true, merchant: result.data } : { ok: false, result };
  }

  // The price field's value in cents (null: no price), or the words saying why not.
  function readPrice(typed, m) {
    if (!typed) {
      if (m.payments === "required") {
        return { error: "give a price: orders are paid before they are cooked" };
      }
      return { price: null };
    }
    const cents = K.minorUnits(typed, m.currency);
    if (cents === null) {
      return { error: "enter a price like " + K.typedMoney(1250, m.currency) + " (" + m.currency + ")" };
    }
    return { price: cents };
  }

  // A refusal made here, said in the same place as the API's reasons.
  function refused(field, message) {
    return { ok: false, status: 422, data: { errors: [{ field, message }] } };
  }

  // -- the recipe: lines of an ingredient (a select, by name) and an amount ---------------

  function ingredientsByName() {
    const all = ((K.data && K.data.ingredients) || []).slice();
    return all.sort((a, b) => a.name.localeCompare(b.name));
  }

  // The recipe's part of the form: a line per ingredient (picked by its name) with the
  // amount one portion takes, in that ingredient's unit, named on the amount's label.
  function recipeLines(start) {
    const known = new Map(ingredientsByName().map((i) => [i.id, i]));
    // An ingredient of the recipe that the board does not list (yet): kept, by its name.
    for (const line of start) {
      if (!known.has(line.ingredient_id)) {
        known.set(line.ingredient_id, {
          id: line.ingredient_id, name: line.ingredient || "ingredient " + line.ingredient_id,
          unit: line.unit || "g",
        });
      }
    }
    const nameOf = (entry) => (known.get(Number(entry.pick)) || { name: "" }).name;
    const list = K.lineList({
      legend: "Recipe (each)",
      className: "recipe-lines",
      hint: "What one portion takes: each ingredient once, in its unit.",
      empty: "No ingredients yet: add them to the stock first.",
      options: [...known.values()].map((i) => [i.id, i.name]),
      choose: "Choose an ingredient",
      pickLabel: (n) => "Ingredient " + n,
      numberLabel: (n, id) => {
        const ing = known.get(Number(id));
        return ing ? "Amount of " + ing.name + " (" + unitLabel(ing.unit || "g") + ")" : "Amount";
      },
      add: "Add a recipe line",
      start: start.map((r) => ({ pick: r.ingredient_id, number: r.amount ?? r.grams })),
      field: "recipe",
      parts: { ingredient_id: "pick", [AMOUNT]: "number" },
      words: (message, entry, sent) => {
        const text = String(message || "");
        if (/named twice/.test(text)) {
          const first = sent.find((other) => other !== entry && other.pick === entry.pick);
          return nameOf(entry) + " is on line " + list.position(first) + " already: one line per ingredient";
        }
        if (/ingredient id/.test(text)) return "choose an ingredient";
        if (/unknown ingredient/.test(text)) return "this ingredient is no longer in the stock: choose another";
        return K.friendly(text);
      },
      // Under the recipe's title: which lines to look at.
      summary: (numbers) => "Check " + (numbers.length === 1 ? "line " + numbers[0]
        : "lines " + numbers.slice(0, -1).join(", ") + " and " + numbers[numbers.length - 1]) +
        " of the recipe.",
    });
    return list;
  }

  // The API's reasons in a cook's words: about the recipe's lines (`recipe[1].amount`)
  // beside that line's field, the recipe as a whole saying which lines to look at.
  function explainRecipe(result, recipe, sent, currency) {
    const problem = result.data;
    if (result.ok || !problem || !Array.isArray(problem.errors)) return result;
    const errors = problem.errors.map((error) => {
      if (error.field === "recipe") {
        return { field: "recipe", message: sent.length ? K.friendly(error.message) : "add at least one ingredient" };
      }
      const most = error.field === "price" && /to (\d+)/.exec(error.message || "");
      return most ? { field: "price", message: "enter a price of at most " + money(Number(most[1]), currency) } : error;
    });
    return { ...result, data: { ...problem, errors: recipe.reasons(errors, sent) } };
  }

  function recipeWords(product) {
    return product.recipe.map((r) => {
      const ing = ((K.data && K.data.ingredients) || []).find((i) => i.id === r.ingredient_id);
      const unit = r.unit || (ing && ing.unit) || "g";
      return amount(r.amount ?? r.grams, unit) + " " + (r.ingredient || (ing && ing.name) || "");
    }).join(", ");
  }

  function priceWords(product, currency) {
    return product.price === null || product.price === undefined ? "no price" : money(product.price, currency);
  }

  // -- the forms ---------------------------------------------------------------------------

  // The product's form: empty for Add product, filled in with `before` for Edit. The
  // merchant (currency, payments) is asked for when it opens; if that fails, the form says
  // so and sends nothing.
  async function open(before, opener) {
    if (opener.getAttribute("aria-busy") === "true") return;
    opener.setAttribute("aria-busy", "true");
    let m;
    try {
      m = await merchant();
    } finally {
      opener.removeAttribute("aria-busy");
    }
    const known = m.ok ? m.merchant : null;
    const currency = known ? known.currency : "";
    const recipe = recipeLines(before ? before.recipe : []);
    const priceHint = !known ? ""
      : known.payments === "required" ? "Needed: orders are paid before they are cooked."
        : "Optional: leave it empty for no price.";
    const form = K.openForm({
      title: before ? "Edit " + before.name : "Add product",
      submit: before ? "Save changes" : "Add to the menu",
      fields: [
        { name: "name", label: "Name", type: "text", value: before ? before.name : "", required: true },
        {
          name: "price", label: "Price" + (currency ? " (" + currency + ")" : ""), type: "text",
          value: before && known && before.price != null ? K.typedMoney(before.price, currency) : "",
          hint: priceHint,
        },
        { name: "recipe", label: "Recipe (each)", type: "custom", render: recipe.render },
      ],
      fieldOf: (field) => (["name", "price", "recipe"].includes(field) ? field : null),
      conflictField: "name",
      send: async (values) => {
        recipe.clear();
        // Without the currency the price cannot be read (nor, in Edit, shown as it is).
        if (!known) return refused("merchant", "Kitchen did not answer when this form opened: close it and open it again.");
        const current = known;
        const price = readPrice(values.price, current);
        if (price.error) return refused("price", price.error);
        // Lines left blank are skipped: `sent[n]` is the line behind the API's `recipe[n]`.
        const sent = values.recipe.filter((line) => line.pick || line.number);
        const lines = sent.map((line) => ({
          ingredient_id: line.pick ? Number(line.pick) : null, [AMOUNT]: wholeNumber(line.number),
        }));
        const body = { name: values.name, recipe: lines, price: price.price };
        if (!before) {
          if (body.price === null) delete body.price;
          return explainRecipe(await K.api("POST", "/products", body), recipe, sent, current.currency);
        }
        // Only what changed: a price or recipe left as it was is not sent again.
        const change = {};
        if (body.name !== before.name) change.name = body.name;
        if (body.price !== (before.price ?? null)) change.price = body.price;
        const was = before.recipe.map((r) => [r.ingredient_id, r.amount ?? r.grams]);
        if (JSON.stringify(lines.map((r) => [r.ingredient_id, r[AMOUNT]])) !== JSON.stringify(was)) {
          change.recipe = lines;
        }
        if (!Object.keys(change).length) return { ok: true, status: 200, data: before, unchanged: true };
        return explainRecipe(await K.api("PATCH", "/products/" + before.id, change), recipe, sent, current.currency);
      },
      done: (result) => {
        const p = result.data;
        if (result.unchanged) return "Nothing changed in " + p.name + ".";
        const cur = known ? known.currency : "";
        return (before ? "Saved " : "Added ") + p.name + ": " + recipeWords(p) +
          (cur ? "; " + priceWords(p, cur) : "") + ".";
      },
    });
    // A phone shows the keys of a price (digits and the point).
    const priceInput = form.form.querySelector("input[name=price]");
    priceInput.inputMode = "decimal";
    priceInput.autocomplete = "off";
    if (!m.ok) form.showErrors(K.explain(m.result));
  }

  // Remove: a confirmation first (the focus starts on Close, the safe answer).
  function remove(tr) {
    const p = tr.item;
    const form = K.openForm({
      title: "Remove " + p.name + " from the menu?",
      intro: "New orders for " + p.name + " are refused from then on; orders that name it keep " +
        "their history. Its name is free again for a new product.",
      submit: "Remove from the menu",
      fields: [],
      send: () => K.api("DELETE", "/products/" + p.id),
      done: () => {
        refocus = p.id;
        return "Removed " + p.name + " from the menu.";
      },
    });
    form.form.querySelector(".form-buttons .quiet").focus();
  }

  // After a removal, its row (and the button that had the focus) is gone: the focus goes
  // to Add product rather than to nowhere.
  let refocus = null; // the id of the product removed, until the board no longer lists it
  let addButton = null;

  K.features.push({
    board(data) {
      if (!addButton) {
        addButton = button("Add product", "add-product", () => open(null, addButton));
        K.$("products-actions").append(addButton);
      }
      if (refocus !== null && !data.products.some((p) => p.id === refocus)) {
        refocus = null;
        const active = document.activeElement;
        if (!active || active === document.body) addButton.focus();
      }
    },
    product(tr) {
      const actions = tr.querySelector(".row-actions");
      if (actions.querySelector(".menu-edit")) return;
      const edit = button("Edit", "quiet menu-edit", () => open(tr.item, edit));
      const drop = button("Remove", "quiet menu-remove", () => remove(tr));
      for (const b of [edit, drop]) {
        // Read with the product's name: "Edit, button, Burger".
        b.setAttribute("aria-describedby", tr.querySelector(".product-name").id);
        actions.append(b);
      }
    },
  });
})();
