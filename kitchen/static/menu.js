// The menu: Add product (name, price in the merchant's currency, the recipe: each
// ingredient picked by its name with the amount one portion takes, in its unit), Edit
// on each product (the same form, filled in) and Remove (after a confirmation). Each
// calls POST /products, PATCH /products/{id} or DELETE /products/{id} as curl users do.
"use strict";

(function () {
  const K = window.Kitchen;
  const { el, button, amount, money, unitLabel, wholeNumber } = K;

  // What a recipe line's amount is called in the request (`grams` is its older name).
  const AMOUNT = "amount";

  // -- the merchant: currency and payments, asked once when a form opens -------------------

  async function merchant() {
    const result = await K.api("GET", "/merchant");
    return result.ok && result.data ? { ok: true, merchant: result.data } : { ok: false, result };
  }

  // Cents as typed in the form ("12.50", "1200" for JPY), without the thousands' commas
  // that `Kitchen.money` shows, so that sending the form unchanged sends the same price.
  function typedMoney(minor, currency) {
    const scale = BigInt(K.minorUnits("1", currency));
    const places = String(scale).length - 1;
    const value = BigInt(minor);
    return String(value / scale) + (places ? "." + String(value % scale).padStart(places, "0") : "");
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
      return { error: "enter a price like " + typedMoney(1250, m.currency) + " (" + m.currency + ")" };
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

  // The recipe's part of the form: a group of lines, each with its own reasons beside its
  // own fields; `Add a recipe line` and `Remove line N` change how many there are.
  function recipeEditor(start) {
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
    let count = 0;
    let group;
    let list;
    let add;
    let prefix;

    function labelAmount(line) {
      const ing = known.get(Number(line.select.value));
      const label = ing ? "Amount of " + ing.name + " (" + unitLabel(ing.unit || "g") + ")" : "Amount";
      line.amountLabel.textContent = label;
    }

    function renumber() {
      [...list.children].forEach((li, index) => {
        li.line.ingredientLabel.textContent = "Ingredient " + (index + 1);
        li.line.remove.textContent = "Remove line " + (index + 1);
      });
    }

    function part(className, labelText, control, n, what) {
      const wrap = el("div", "line-part " + className);
      const id = prefix + "-" + what + "-" + n;
      const label = el("label", "", labelText);
      label.htmlFor = id;
      control.id = id;
      const error = el("p", "field-error");
      error.id = id + "-error";
      control.setAttribute("aria-describedby", error.id);
      wrap.append(label, control, error);
      return { wrap, label, error };
    }

    function addLine(start) {
      const n = ++count;
      const li = el("li", "recipe-line");
      const select = el("select");
      const none = el("option", "", "Choose an ingredient");
      none.value = "";
      select.append(none);
      known.forEach((ing) => {
        const option = el("option", "", ing.name);
        option.value = String(ing.id);
        select.append(option);
      });
      const input = el("input");
      input.type = "text";
      input.inputMode = "numeric";
      input.autocomplete = "off";
      const ingredientPart = part("line-ingredient", "Ingredient", select, n, "ingredient");
      const amountPart = part("line-amount", "Amount", input, n, "amount");
      const remove = button("Remove line", "quiet remove-line", () => {
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        renumber();
        (next ? next.line.select : add).focus();
      });
      const line = {
        li, select, input, remove,
        ingredientLabel: ingredientPart.label, amountLabel: amountPart.label,
        parts: { ingredient: ingredientPart, amount: amountPart },
      };
      li.line = line;
      select.addEventListener("change", () => labelAmount(line));
      if (start) {
        select.value = String(start.ingredient_id);
        input.value = String(start.amount ?? start.grams);
      }
      labelAmount(line);
      li.append(ingredientPart.wrap, amountPart.wrap, remove);
      list.append(li);
      renumber();
      return line;
    }

    function lines() {
      return [...list.children].map((li) => li.line);
    }

    return {
      render(wrap, id) {
        prefix = id;
        group = el("fieldset", "recipe-lines");
        group.id = id;
        const legend = el("legend", "", "Recipe (each)");
        const hint = el("p", "field-hint", "What one portion takes: each ingredient once, in its unit.");
        hint.id = id + "-hint";
        group.setAttribute("aria-describedby", id + "-hint " + id + "-error");
        list = el("ol", "recipe-list");
        add = button("Add a recipe line", "quiet add-line", () => addLine(null).select.focus());
        if (known.size === 0) {
          add.disabled = true;
          hint.textContent = "No ingredients yet: add them to the stock first.";
        }
        group.append(legend, hint, list, add);
        wrap.classList.add("recipe-field");
        wrap.append(group);
        for (const line of start) addLine(line);
        if (!start.length && known.size) addLine(null);
        return this;
      },
      read() {
        return lines();
      },
      // Where the focus goes when the recipe is refused: the first line marked, else the
      // first line, else the button that adds one.
      focusable() {
        const marked = list.querySelector("[aria-invalid=true]");
        return marked || (lines()[0] ? lines()[0].select : add);
      },
      clear() {
        for (const line of lines()) {
          for (const p of Object.values(line.parts)) {
            p.error.textContent = "";
            p.wrap.classList.remove("invalid");
            p.wrap.querySelector("select, input").removeAttribute("aria-invalid");
          }
        }
      },
      mark(line, which, words) {
        const p = line.parts[which];
        if (p.error.textContent) return;
        p.error.textContent = words;
        p.wrap.classList.add("invalid");
        p.wrap.querySelector("select, input").setAttribute("aria-invalid", "true");
      },
      // The recipe as the API takes it; lines left blank are skipped. `sent[n]` is the
      // line behind the API's `recipe[n]`.
      body() {
        const sent = lines().filter((line) => line.select.value || line.input.value.trim());
        const recipe = sent.map((line) => ({
          ingredient_id: line.select.value ? Number(line.select.value) : null,
          [AMOUNT]: wholeNumber(line.input.value.trim()),
        }));
        return { recipe, sent };
      },
      nameOf(line) {
        const ing = known.get(Number(line.select.value));
        return ing ? ing.name : "";
      },
      lines,
    };
  }

  // The API's reasons about recipe lines (`recipe[1].amount`) put beside that line's
  // field, in a cook's words; the recipe as a whole says which lines to look at.
  function explainRecipe(result, editor, sent, currency) {
    const problem = result.data;
    if (result.ok || !problem || !Array.isArray(problem.errors)) return result;
    const errors = [];
    const marked = new Set();
    let summaryAt = -1;
    for (const error of problem.errors) {
      const found = /^recipe\[(\d+)\]\.(\w+)$/.exec(error.field || "");
      const line = found && sent[Number(found[1])];
      if (line) {
        const which = found[2] === "ingredient_id" ? "ingredient" : "amount";
        editor.mark(line, which, lineWords(error.message, line, editor, sent));
        marked.add(editor.lines().indexOf(line) + 1);
        if (summaryAt < 0) summaryAt = errors.length;
      } else if (error.field === "recipe") {
        errors.push({ field: "recipe", message: sent.length ? K.friendly(error.message) : "add at least one ingredient" });
      } else if (error.field === "price") {
        const most = /to (\d+)/.exec(error.message || "");
        errors.push({ field: "price", message: most ? "enter a price of at most " + money(Number(most[1]), currency) : error.message });
      } else {
        errors.push(error);
      }
    }
    if (marked.size) {
      const numbers = [...marked].sort((a, b) => a - b);
      const which = numbers.length === 1 ? "line " + numbers[0]
        : "lines " + numbers.slice(0, -1).join(", ") + " and " + numbers[numbers.length - 1];
      // Where the first line's reason was: the focus goes to the first field refused.
      errors.splice(summaryAt, 0, { field: "recipe", message: "Check " + which + " of the recipe." });
    }
    return { ...result, data: { ...problem, errors } };
  }

  function lineWords(message, line, editor, sent) {
    const text = String(message || "");
    if (/named twice/.test(text)) {
      const first = sent.find((other) => other !== line && other.select.value === line.select.value);
      const n = editor.lines().indexOf(first) + 1;
      return editor.nameOf(line) + " is on line " + n + " already: one line per ingredient";
    }
    if (/ingredient id/.test(text)) return "choose an ingredient";
    if (/unknown ingredient/.test(text)) return "this ingredient is no longer in the stock: choose another";
    return K.friendly(text);
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
    const editor = recipeEditor(before ? before.recipe : []);
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
          value: before && known && before.price != null ? typedMoney(before.price, currency) : "",
          hint: priceHint,
        },
        { name: "recipe", label: "Recipe (each)", type: "custom", render: (wrap, id) => editor.render(wrap, id) },
      ],
      fieldOf: (field) => (["name", "price", "recipe"].includes(field) ? field : null),
      conflictField: "name",
      send: async (values) => {
        editor.clear();
        // Without the currency the price cannot be read (nor, in Edit, shown as it is).
        if (!known) return refused("merchant", "Kitchen did not answer when this form opened: close it and open it again.");
        const current = known;
        const price = readPrice(values.price, current);
        if (price.error) return refused("price", price.error);
        const { recipe, sent } = editor.body();
        const body = { name: values.name, recipe, price: price.price };
        if (!before) {
          if (body.price === null) delete body.price;
          return explainRecipe(await K.api("POST", "/products", body), editor, sent, current.currency);
        }
        // Only what changed: a price or recipe left as it was is not sent again.
        const change = {};
        if (body.name !== before.name) change.name = body.name;
        if (body.price !== (before.price ?? null)) change.price = body.price;
        const was = before.recipe.map((r) => [r.ingredient_id, r.amount ?? r.grams]);
        if (JSON.stringify(recipe.map((r) => [r.ingredient_id, r[AMOUNT]])) !== JSON.stringify(was)) {
          change.recipe = recipe;
        }
        if (!Object.keys(change).length) return { ok: true, status: 200, data: before, unchanged: true };
        return explainRecipe(await K.api("PATCH", "/products/" + before.id, change), editor, sent, current.currency);
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
    // The recipe's own reason ("add at least one ingredient") under its title, not
    // after its last line.
    const reason = form.form.querySelector(".recipe-field > .field-error");
    form.form.querySelector(".recipe-lines > .field-hint").after(reason);
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
