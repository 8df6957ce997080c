// Kitchen's page, the shared parts: how amounts and money read, the API called with this
// tab's key, forms in dialogs with errors beside their fields, and lists redrawn in place
// (so a button keeps the keyboard's focus across the refresh every 2 s). Each task of the
// day has its own file (stock.js, ingredients.js, menu.js, orders.js, history.js) that adds
// itself to Kitchen.features; dashboard.js polls and draws. Plain scripts, no build step.
// Everything from the server is put in with textContent, never as HTML.
"use strict";

window.Kitchen = (function () {
  const STORE = "kitchen.key";
  const $ = (id) => document.getElementById(id);
  const number = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const number1 = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const clock = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const day = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });

  // -- amounts ----------------------------------------------------------------------------

  // What each unit's amounts are called on a form's label, and the larger unit a
  // thousand of them make.
  const UNITS = {
    g: { label: "g", big: "kg" },
    ml: { label: "ml", big: "l" },
    piece: { label: "pieces", big: null },
  };

  // An amount of an ingredient as people read it: "480 g", "4.94 kg", "19.7 kg", "250 ml",
  // "1.5 l", "1 piece", "12 pieces". Stock is an integer of the unit; only the display
  // divides.
  function amount(n, unit) {
    const u = UNITS[unit] ? unit : "g";
    if (u === "piece") return number.format(n) + (Math.abs(n) === 1 ? " piece" : " pieces");
    if (Math.abs(n) < 1000) return number.format(n) + " " + u;
    const big = n / 1000;
    return (Math.abs(big) < 100 ? number : number1).format(big) + " " + UNITS[u].big;
  }

  // A signed change, as the ledger shows it: "+5 kg", "−150 g".
  function change(n, unit) {
    return (n > 0 ? "+" : n < 0 ? "\u2212" : "") + amount(Math.abs(n), unit);
  }

  function unitLabel(unit) {
    return (UNITS[unit] || UNITS.g).label;
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

  function digits(currency) {
    const code = String(currency || "").toUpperCase();
    return EXPONENTS.has(code) ? EXPONENTS.get(code) : 2;
  }

  // An amount in minor units (integer cents) as people read it: "12.50 EUR",
  // "1,200 JPY". Integer division and remainder, never a float: 1999 cents is 19.99.
  function money(minor, currency) {
    const code = String(currency || "").toUpperCase();
    const places = digits(code);
    const scale = 10n ** BigInt(places);
    const value = BigInt(minor);
    const size = value < 0n ? -value : value;
    const whole = number.format(size / scale);
    const part = places ? "." + (size % scale).toString().padStart(places, "0") : "";
    return (value < 0n ? "-" : "") + whole + part + " " + code;
  }

  // Minor units as a person types them back into a field: 1495 EUR cents -> "14.95",
  // 1200 JPY -> "1200" (no thousands' commas, no code), so that a form sent unchanged
  // sends the same amount.
  function typedMoney(minor, currency) {
    return money(minor, currency).replace(/,/g, "").replace(/ \S*$/, "");
  }

  // What a person typed as money ("12.5", "12,50", "7") in minor units, read as text
  // (never through a float); null if it is not an amount of this currency.
  function minorUnits(typed, currency) {
    return scaled(typed, digits(currency), 12);
  }

  // Decimal text as typed ("12.5", "12,5") as an integer of 10^-places units (125000 at
  // 4 places), exactly: BigInt, never a float's rounding. Null when it is not such a
  // number, or has more than `places` decimals or `wholeDigits` digits before them.
  function scaled(typed, places, wholeDigits) {
    const text = String(typed).trim().replace(",", ".");
    const match = new RegExp("^(\\d{1," + wholeDigits + "})(?:\\.(\\d*))?$").exec(text);
    if (!match || (match[2] || "").length > places) return null;
    const part = (match[2] || "").padEnd(places, "0");
    return Number(BigInt(match[1]) * 10n ** BigInt(places) + BigInt(part || "0"));
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

  function button(label, className, onClick) {
    const node = el("button", className, label);
    node.type = "button";
    if (onClick) node.addEventListener("click", onClick);
    return node;
  }

  // -- the API ----------------------------------------------------------------------------

  function key() {
    return sessionStorage.getItem(STORE) || "";
  }

  // One call of the API as curl users make it, with this tab's key. Resolves to
  // {ok, status, data}: status 0 when Kitchen did not answer.
  async function api(method, path, body, headers) {
    const sent = { Accept: "application/json", ...(headers || {}) };
    if (key()) sent.Authorization = "Bearer " + key();
    const init = { method, headers: sent, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      sent["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    if (response.status === 401) Kitchen.onUnauthorized();
    return { ok: response.ok, status: response.status, data };
  }

  // The API's messages (RFC 9457 problem details) said as a cook would read them.
  const PHRASES = [
    [/^must be a positive integer.*$/, "enter a whole number above 0"],
    [/^must be an integer of 0 or more.*$/, "enter a whole number, 0 or more"],
    [/^must be an integer.*$/, "enter a whole number"],
    [/^must be a non-negative integer.*$/, "enter a whole number, 0 or more"],
    [/^is required$/, "fill this in"],
    [/^must not be empty$/, "fill this in"],
    [/^must be text$/, "fill this in"],
  ];

  function friendly(message) {
    const text = String(message || "").trim();
    for (const [pattern, said] of PHRASES) if (pattern.test(text)) return said;
    return text;
  }

  // A failed call as {fields: Map(form field -> words), general: words}. `fieldOf` maps an
  // API field ("recipe[0].amount") to a form field's name (default: the same name);
  // `conflictField` is the field a 409 is about (a name taken).
  function explain(result, fieldOf, conflictField) {
    const fields = new Map();
    const problem = result.data || {};
    const detail = friendly(problem.detail || problem.title || "");
    if (result.status === 0) {
      return { fields, general: "Kitchen did not answer: check the connection, then look at the page before trying again." };
    }
    if (result.status === 401) {
      return { fields, general: "Your key is no longer accepted: sign in again, then try again." };
    }
    if (result.status === 404) {
      return { fields, general: "This is no longer there (someone may have removed it): close this form and look again." };
    }
    if (result.status === 409 && conflictField) {
      fields.set(conflictField, detail);
      return { fields, general: "" };
    }
    let general = "";
    for (const error of problem.errors || []) {
      const name = fieldOf ? fieldOf(error.field) : error.field;
      if (name && !fields.has(name)) fields.set(name, friendly(error.message));
      else if (!name) general += (general ? " " : "") + friendly(error.message);
    }
    if (!fields.size && !general) {
      general = detail || "Kitchen could not do this (" + (problem.title || "error " + result.status) + ").";
    }
    if (result.status === 503) general = (general ? general + " " : "") + "Try again in a moment.";
    return { fields, general };
  }

  // -- forms ------------------------------------------------------------------------------

  let formCount = 0;

  // A form in a modal dialog: focus goes to its first field, Escape or Close leaves it,
  // Enter sends it. `spec`:
  //   title, intro?, submit (the button's words),
  //   fields: [{name, label, type ("number", "text", "select", "checkbox", "textarea",
  //            or "custom"), value?, unit? (shown after the label), options? ([value,
  //            words] pairs), required?, min?, hint?, render? (custom: (wrap, id) ->
  //            {read() -> the field's value, focusable?() -> the control that gets
  //            the focus and aria-invalid when the field is refused}: it draws its own
  //            label; openForm adds the reason's <p id="<id>-error"> after it. See
  //            lineList)}],
  //   send: async (values) -> an api() result,
  //   done: (result) -> what the page says once it worked,
  //   fieldOf?, conflictField? (see explain).
  // While a send is out the button is disabled: a second Enter asks nothing twice. On
  // failure the dialog stays, with what was typed and the reason beside the field.
  function openForm(spec) {
    const opener = document.activeElement;
    const id = "form" + ++formCount;
    const dialog = el("dialog", "form-dialog" + (spec.wide ? " form-wide" : ""));
    dialog.setAttribute("aria-labelledby", id + "-title");
    const form = el("form");
    form.noValidate = true; // the API's reasons, beside the field, say what is wrong
    form.append(el("h2", "", spec.title));
    form.querySelector("h2").id = id + "-title";
    if (spec.intro) form.append(el("p", "intro", spec.intro));
    const general = el("p", "form-error");
    general.setAttribute("role", "alert");
    form.append(general);
    const inputs = new Map();
    for (const field of spec.fields) {
      const wrap = el("div", "field field-" + field.type);
      const inputId = id + "-" + field.name;
      const label = el("label", "", field.label + (field.unit ? " (" + unitLabel(field.unit) + ")" : ""));
      label.htmlFor = inputId;
      let input;
      let custom = null;
      if (field.type === "custom") {
        custom = field.render(wrap, inputId, label);
      } else if (field.type === "select") {
        input = el("select");
        for (const [value, said] of field.options) {
          const option = el("option", "", said);
          option.value = String(value);
          input.append(option);
        }
      } else if (field.type === "textarea") {
        input = el("textarea");
        input.rows = 2;
      } else {
        input = el("input");
        input.type = field.type === "checkbox" ? "checkbox" : "text";
        if (field.type === "number") {
          input.inputMode = "numeric";
          input.autocomplete = "off";
        }
      }
      if (input) {
        input.id = inputId;
        input.name = field.name;
        if (field.type === "checkbox") input.checked = Boolean(field.value);
        else if (field.value !== undefined && field.value !== null) input.value = String(field.value);
        if (field.required) input.required = true;
      }
      const error = el("p", "field-error");
      error.id = inputId + "-error";
      if (field.type === "checkbox") wrap.append(input, label);
      else if (!custom) wrap.append(label, input);
      if (field.hint) {
        const hint = el("p", "field-hint", field.hint);
        hint.id = inputId + "-hint";
        wrap.append(hint);
      }
      if (input && field.type === "number" && field.unit && field.unit !== "piece") {
        // Amounts are typed in the base unit: 5000 g reads back as "= 5 kg" as it is typed.
        const reads = el("p", "field-reads");
        reads.setAttribute("aria-live", "polite");
        const show = () => {
          const n = wholeNumber(input.value);
          reads.textContent = typeof n === "number" && Math.abs(n) >= 1000 ? "= " + amount(n, field.unit) : "";
        };
        input.addEventListener("input", show);
        show();
        wrap.append(reads);
      }
      wrap.append(error);
      if (input) {
        input.setAttribute("aria-describedby", error.id + (field.hint ? " " + inputId + "-hint" : ""));
      }
      inputs.set(field.name, { field, input, custom, error, wrap });
      form.append(wrap);
    }
    const buttons = el("div", "form-buttons");
    const submit = el("button", "", spec.submit);
    submit.type = "submit";
    const close = button("Close", "quiet", () => leave());
    buttons.append(submit, close);
    form.append(buttons);
    dialog.append(form);
    document.body.append(dialog);

    function values() {
      const out = {};
      inputs.forEach(({ field, input, custom }, name) => {
        if (custom) out[name] = custom.read();
        else if (field.type === "checkbox") out[name] = input.checked;
        else out[name] = input.value.trim();
      });
      return out;
    }

    function clearErrors() {
      general.textContent = "";
      inputs.forEach(({ input, error, wrap }) => {
        error.textContent = "";
        wrap.classList.remove("invalid");
        if (input) input.removeAttribute("aria-invalid");
      });
    }

    function leave() {
      dialog.close();
    }

    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
    });

    let busy = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) return;
      busy = true;
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      clearErrors();
      let result;
      try {
        result = await spec.send(values());
      } finally {
        busy = false;
        submit.disabled = false;
        submit.removeAttribute("aria-busy");
      }
      if (result.ok) {
        const said = spec.done ? spec.done(result) : "";
        leave();
        if (said) Kitchen.say(said);
        Kitchen.refresh();
        return;
      }
      showErrors(explain(result, spec.fieldOf, spec.conflictField));
    });

    function showErrors(found) {
      let first = null;
      found.fields.forEach((words, name) => {
        const entry = inputs.get(name);
        if (!entry) {
          general.textContent += (general.textContent ? " " : "") + words;
          return;
        }
        entry.error.textContent = words;
        entry.wrap.classList.add("invalid");
        const target = entry.input || (entry.custom && entry.custom.focusable && entry.custom.focusable());
        if (target) {
          target.setAttribute("aria-invalid", "true");
          if (!first) first = target;
        }
      });
      if (found.general) general.textContent += (general.textContent ? " " : "") + found.general;
      if (first) first.focus();
    }

    dialog.showModal();
    const firstInput = form.querySelector("input, select, textarea");
    if (firstInput) firstInput.focus();
    return { dialog, form, showErrors, values };
  }

  // A whole number a person typed, for the API: a number when it is one, else the text
  // as typed, so that the API's reason ("enter a whole number") is what they read.
  function wholeNumber(typed) {
    const text = String(typed).replace(/[\s,_]/g, "");
    return /^-?\d+$/.test(text) ? Number(text) : typed === "" ? null : typed;
  }

  // A list of lines inside a form, as a recipe's and an order's are: each line a select
  // and a whole number, labelled with the line's number, with a reason beside each part.
  // Add (its words: `add`) makes a line and puts the focus on its select; "Remove line N"
  // takes one away, the focus going to the next line, else the one before, else Add.
  // `spec`: legend? (the list's visible title) or name (its accessible name), hint?,
  //   className? (on its fieldset), options ([value, words] pairs) and choose (the empty
  //   option's words), empty (the hint when there is nothing to choose: Add is off),
  //   pickLabel(n), numberLabel(n, value) (may follow the line's choice), number? (a new
  //   line's, default ""), keepOne? (a lone line cannot be removed), start? ([{pick,
  //   number}]; without, one new line); what the API calls them: field (the list,
  //   "recipe"), parts ({ingredient_id: "pick", amount: "number"}), and how its reasons
  //   read: words(message, entry, sent) beside a line, summary(numbers) for the list.
  // As openForm's custom field: `render: list.render`; read() gives each line as {pick,
  // number, line}; clear() before a send; reasons(errors, sent) marks the lines.
  function lineList(spec) {
    let prefix;
    let list;
    let add;
    let made = 0;
    const lines = () => [...list.children].map((li) => li.line);

    function relabel() {
      const all = lines();
      all.forEach((line, i) => {
        line.parts.pick.label.textContent = spec.pickLabel(i + 1);
        line.parts.number.label.textContent = spec.numberLabel(i + 1, line.select.value);
        line.remove.textContent = "Remove line " + (i + 1);
        line.remove.hidden = Boolean(spec.keepOne) && all.length === 1;
      });
    }

    function part(kind, control, n) {
      const wrap = el("div", "line-part line-" + kind);
      const label = el("label");
      control.id = prefix + "-" + kind + "-" + n;
      label.htmlFor = control.id;
      const error = el("p", "field-error");
      error.id = control.id + "-error";
      control.setAttribute("aria-describedby", error.id);
      wrap.append(label, control, error);
      return { wrap, label, control, error };
    }

    function addLine(start) {
      const n = ++made;
      const li = el("li", "line-item");
      const select = el("select");
      for (const [value, said] of [["", spec.choose], ...spec.options]) {
        const option = el("option", "", said);
        option.value = String(value);
        select.append(option);
      }
      select.value = start ? String(start.pick) : "";
      select.addEventListener("change", relabel);
      const input = el("input");
      input.type = "text";
      input.inputMode = "numeric";
      input.autocomplete = "off";
      input.value = String(start ? start.number : spec.number ?? "");
      const parts = { pick: part("pick", select, n), number: part("number", input, n) };
      const remove = button("", "quiet remove-line", () => {
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        relabel();
        (next ? next.line.select : add).focus();
      });
      li.line = { select, input, remove, parts };
      li.append(parts.pick.wrap, parts.number.wrap, remove);
      list.append(li);
      relabel();
      return li.line;
    }

    const field = {
      render(wrap, id) {
        prefix = id;
        const group = el("fieldset", "line-list" + (spec.className ? " " + spec.className : ""));
        group.id = id;
        if (spec.legend) group.append(el("legend", "", spec.legend));
        else group.setAttribute("aria-label", spec.name);
        const hint = el("p", "field-hint", spec.options.length ? spec.hint : spec.empty);
        hint.id = id + "-hint";
        if (hint.textContent) group.append(hint);
        group.setAttribute("aria-describedby", (hint.textContent ? hint.id + " " : "") + id + "-error");
        list = el("ol", "line-items");
        add = button(spec.add, "quiet add-line", () => addLine(null).select.focus());
        add.disabled = !spec.options.length;
        group.append(list, add);
        wrap.append(group);
        for (const start of spec.start || []) addLine(start);
        if (!list.children.length && spec.options.length) addLine(null);
        // openForm puts the field's own reason ("add at least one ingredient") at the end
        // of `wrap` once this returns: it goes under the title, not after the last line.
        queueMicrotask(() => {
          const reason = wrap.querySelector(":scope > .field-error");
          if (reason) list.before(reason);
        });
        return field;
      },
      read: () => lines().map((line) => ({
        pick: line.select.value, number: line.input.value.trim(), line,
      })),
      // The focus, when the list is refused: the first part marked, else the first line,
      // else Add.
      focusable: () => list.querySelector("[aria-invalid=true]") || (lines()[0] ? lines()[0].select : add),
      clear() {
        add.removeAttribute("aria-invalid");
        for (const line of lines()) {
          for (const p of Object.values(line.parts)) {
            p.error.textContent = "";
            p.wrap.classList.remove("invalid");
            p.control.removeAttribute("aria-invalid");
          }
        }
      },
      // Where a line read() gave is now: its number, from 1 (0: removed since).
      position: (entry) => lines().indexOf(entry.line) + 1,
      // The API's reasons about lines (`recipe[1].amount`) beside that part of the line
      // behind `sent[1]` (the entries of read() that were sent), the first reason of each
      // part; returns the other errors, with the list's `summary` of the lines marked
      // where the first line's reason was (so the focus follows the API's order).
      reasons(errors, sent) {
        const rest = [];
        const marked = new Set();
        let at = -1;
        for (const error of errors || []) {
          const found = /^(\w+)\[(\d+)\]\.(\w+)$/.exec(error.field || "");
          const entry = found && found[1] === spec.field && sent[Number(found[2])];
          const p = entry && entry.line.parts[spec.parts[found[3]]];
          if (!p) {
            rest.push(error);
            continue;
          }
          if (!p.error.textContent) p.error.textContent = spec.words(error.message, entry, sent);
          p.wrap.classList.add("invalid");
          p.control.setAttribute("aria-invalid", "true");
          marked.add(field.position(entry));
          if (at < 0) at = rest.length;
        }
        if (at >= 0) {
          const numbers = [...marked].sort((a, b) => a - b);
          rest.splice(at, 0, { field: spec.field, message: spec.summary(numbers) });
        }
        return rest;
      },
    };
    return field;
  }

  // -- lists redrawn in place -------------------------------------------------------------

  // Make `parent`'s children the `items`, in order, reusing the node of each key (so
  // focus, an open menu and a bar's glide survive the refresh): `make(item)` builds a
  // new one, `update(node, item)` draws an item on its node.
  function keyed(parent, items, keyOf, make, update) {
    const nodes = new Map([...parent.children].map((node) => [node.dataset.key, node]));
    items.forEach((item, index) => {
      const k = String(keyOf(item));
      let node = nodes.get(k);
      if (!node) {
        node = make(item);
        node.dataset.key = k;
      }
      nodes.delete(k);
      node.item = item;
      update(node, item);
      if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] || null);
    });
    nodes.forEach((node) => node.remove());
  }

  // -- what the page says -----------------------------------------------------------------

  // A change done: said once, politely, in the live region beside the status.
  function say(text) {
    const node = $("said");
    node.textContent = "";
    // A new text node, so that a screen reader announces the same words twice too.
    requestAnimationFrame(() => { node.textContent = text; });
  }

  return {
    STORE, $, el, button, timeEl, number, amount, change, unitLabel, percent, when, money,
    minorUnits, scaled, words, key, api, explain, friendly, openForm, wholeNumber, keyed, say,
    clock, typedMoney, lineList,
    // Set by dashboard.js: the latest GET /dashboard, a refresh now, and what a 401 does.
    data: null,
    refresh: () => {},
    onUnauthorized: () => {},
    // Each task's file pushes {ingredient?, product?, order?, alert?, board?}: called on
    // every draw with (node, item, data), or (data) for `board`.
    features: [],
  };
})();
