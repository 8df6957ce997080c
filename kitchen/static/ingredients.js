// Ingredients on the page: *Add ingredient* (name, unit, starting stock, par level,
// threshold, delivery time, pack size) calls POST /ingredients, and *Edit* on each
// ingredient (the same but the unit and stock) calls PATCH /ingredients/{id}, as curl
// users do. The unit is chosen once,
// when the ingredient is made: every amount of it stays an integer of that unit.
"use strict";

(function () {
  const K = window.Kitchen;
  const { button, amount, wholeNumber } = K;

  // The units Kitchen keeps amounts in, as the select says them.
  const UNIT_WORDS = [["g", "grams (g)"], ["ml", "millilitres (ml)"], ["piece", "pieces"]];

  // The API's field names, as the forms call them (the unit's errors go beside Unit).
  const FIELDS = {
    name: "name", unit: "unit", stock: "stock", full_stock: "par", threshold: "threshold",
    lead_time_days: "lead", pack_size: "pack",
  };
  const fieldOf = (field) => FIELDS[field] || null;

  // A threshold is kept as a fraction to 6 decimal places: a percentage to 4.
  const MILLIONTHS = 1000000;
  const PERCENT_WRONG = "enter a percentage above 0 and below 100, such as 25 or 12.5";
  const DAYS_WRONG = "enter a whole number of days, 0 to 365";

  // How long a delivery takes and what the supplier sells it by: the forecast's marks and
  // the "To order" list follow them (forecast.js).
  const LEAD_HINT = "From ordering to the delivery at the door: an ingredient that runs " +
    "out sooner is marked.";
  const PACK_HINT = "What the supplier sells it by (a 5 kg sack: 5000 g): orders are " +
    "suggested in whole packs. Empty: any amount.";

  function leadAndPack(unit, lead, pack) {
    return [
      { name: "lead", label: "Delivery takes (days)", type: "number", value: lead, required: true, hint: LEAD_HINT },
      { name: "pack", label: "Pack size", type: "number", unit, value: pack, hint: PACK_HINT },
    ];
  }

  // What the page says of them once saved: "Delivery takes 3 days, packs of 5 kg."
  function leadAndPackText(i, unit) {
    return " Delivery takes " + (i.lead_time_days === 1 ? "1 day" : i.lead_time_days + " days") +
      (i.pack_size ? ", packs of " + amount(i.pack_size, unit) : ", any amount") + ".";
  }

  // What a person typed as a percentage ("25", "12.5", "12,5 %") as the fraction the API
  // takes (0.25, 0.125), read as text (never through a float's 0.1 + 0.2); null if it is
  // not a percentage strictly between 0 and 100 with at most 4 decimals.
  function fractionOf(typed) {
    const text = String(typed).trim().replace(/\s*%$/, "").replace(",", ".");
    const match = /^(\d{1,3})(?:\.(\d{0,4}))?$/.exec(text);
    if (!match) return null;
    const millionths = Number(match[1]) * 10000 + Number((match[2] || "").padEnd(4, "0"));
    if (millionths <= 0 || millionths >= MILLIONTHS) return null;
    return Number("0." + String(millionths).padStart(6, "0"));
  }

  // A threshold (0.125) as the percentage a person types ("12.5").
  function percentText(fraction) {
    const millionths = Math.round(fraction * MILLIONTHS);
    const whole = Math.floor(millionths / 10000);
    const part = String(millionths % 10000).padStart(4, "0").replace(/0+$/, "");
    return part ? whole + "." + part : String(whole);
  }

  // A refusal said before asking Kitchen, in the same place as the API's reasons.
  function refused(field, message) {
    return { ok: false, status: 422, data: { errors: [{ field, message }] } };
  }

  // The API speaks of the threshold as a fraction ("a number from 0.000001 to
  // 0.999999"); the form asks for a percentage, so its reason does too.
  async function call(method, path, body) {
    const result = await K.api(method, path, body);
    const errors = (result.data && result.data.errors) || [];
    for (const error of errors) {
      if (error.field === "threshold") error.message = PERCENT_WRONG;
      if (error.field === "lead_time_days") error.message = DAYS_WRONG;
    }
    return result;
  }

  // A label of a form's field, found by the field's name (to say the chosen unit on it).
  function labelOf(form, name) {
    const input = form.querySelector('[name="' + name + '"]');
    return input ? form.querySelector('label[for="' + input.id + '"]') : null;
  }

  function threshold(values, body) {
    if (!values.threshold) return null;
    const fraction = fractionOf(values.threshold);
    if (fraction === null) return refused("threshold", PERCENT_WRONG);
    body.threshold = fraction;
    return null;
  }

  // -- Add ingredient ---------------------------------------------------------------------

  function add() {
    const opened = K.openForm({
      title: "Add an ingredient",
      intro: "Its unit is what its stock, par level and recipes count in: it cannot change later.",
      submit: "Add ingredient",
      fields: [
        { name: "name", label: "Name", type: "text", required: true },
        { name: "unit", label: "Unit", type: "select", options: UNIT_WORDS, value: "g" },
        { name: "stock", label: "Starting stock", type: "number", unit: "g", required: true },
        {
          name: "par", label: "Par level", type: "number", unit: "g",
          hint: "What a full stock is: 100 % for the threshold. Empty: the starting stock.",
        },
        {
          name: "threshold", label: "Threshold (%)", type: "text",
          hint: "Below this share of the par level it is low and an alert email goes out. " +
            "Empty: the kitchen's.",
        },
        ...leadAndPack("g", "2", ""),
      ],
      fieldOf,
      conflictField: "name",
      send: async (values) => {
        if (!values.name) return refused("name", "fill this in");
        if (values.stock === "") return refused("stock", "fill this in");
        const body = { name: values.name, unit: values.unit, stock: wholeNumber(values.stock) };
        if (values.par !== "") body.full_stock = wholeNumber(values.par);
        if (values.lead === "") return refused("lead_time_days", DAYS_WRONG);
        body.lead_time_days = wholeNumber(values.lead);
        if (values.pack !== "") body.pack_size = wholeNumber(values.pack);
        return threshold(values, body) || call("POST", "/ingredients", body);
      },
      done: (result) => {
        const i = result.data;
        const unit = i.unit || "g";
        return "Added " + i.name + ": " + amount(i.stock, unit) + " in stock, par level " +
          amount(i.full_stock, unit) + ", low below " + K.percent(i.threshold) + "." +
          (i.lead_time_days !== 2 || i.pack_size ? leadAndPackText(i, unit) : "");
      },
    });
    // The amounts' labels say the unit picked: "Starting stock (ml)".
    const form = opened.form;
    const unit = form.querySelector('[name="unit"]');
    unit.addEventListener("change", () => {
      for (const [name, words] of [["stock", "Starting stock"], ["par", "Par level"], ["pack", "Pack size"]]) {
        labelOf(form, name).textContent = words + " (" + K.unitLabel(unit.value) + ")";
      }
    });
    // The kitchen's own threshold, once Kitchen says it (the form works without it).
    K.api("GET", "/merchant").then((result) => {
      const hint = form.querySelector('[id$="-threshold-hint"]');
      if (result.ok && hint && result.data && typeof result.data.threshold === "number") {
        hint.textContent = "Below this share of the par level it is low and an alert email " +
          "goes out. Empty: the kitchen's, " + K.percent(result.data.threshold) + ".";
      }
    });
  }

  // -- Edit -------------------------------------------------------------------------------

  function edit(li) {
    const before = li.item;
    const unit = before.unit || "g";
    const was = {
      name: before.name, par: String(before.full_stock), threshold: percentText(before.threshold),
      lead: String(before.lead_time_days), pack: before.pack_size == null ? "" : String(before.pack_size),
    };
    let sent = {};
    K.openForm({
      title: "Edit " + before.name,
      intro: "Its stock changes with Restock, Count and Waste; its unit (" +
        (UNIT_WORDS.find(([u]) => u === unit) || UNIT_WORDS[0])[1] + ") cannot change.",
      submit: "Save changes",
      fields: [
        { name: "name", label: "Name", type: "text", value: was.name, required: true },
        {
          name: "par", label: "Par level", type: "number", unit, value: was.par, required: true,
          hint: "What a full stock is: 100 % for the threshold.",
        },
        {
          name: "threshold", label: "Threshold (%)", type: "text", value: was.threshold, required: true,
          hint: "Below this share of the par level it is low and an alert email goes out.",
        },
        ...leadAndPack(unit, was.lead, was.pack),
      ],
      fieldOf,
      conflictField: "name",
      send: async (values) => {
        // Only what was changed is sent: a threshold left as it was stays the kitchen's
        // (it follows the kitchen's when that changes) rather than becoming its own.
        const body = {};
        if (!values.name) return refused("name", "fill this in");
        if (values.name !== was.name) body.name = values.name;
        if (values.par === "") return refused("full_stock", "fill this in");
        if (values.par !== was.par) body.full_stock = wholeNumber(values.par);
        if (values.threshold === "") return refused("threshold", PERCENT_WRONG);
        const fraction = fractionOf(values.threshold);
        if (fraction === null) return refused("threshold", PERCENT_WRONG);
        if (fraction !== fractionOf(was.threshold)) body.threshold = fraction;
        if (values.lead === "") return refused("lead_time_days", DAYS_WRONG);
        if (values.lead !== was.lead) body.lead_time_days = wholeNumber(values.lead);
        // Emptied: the supplier sells any amount (null).
        if (values.pack !== was.pack) body.pack_size = values.pack === "" ? null : wholeNumber(values.pack);
        sent = body;
        if (!Object.keys(body).length) return { ok: true, status: 200, data: null };
        return call("PATCH", "/ingredients/" + before.id, body);
      },
      done: (result) => {
        const i = result.data;
        if (!i) return "Nothing to change on " + before.name + ".";
        const u = i.unit || unit;
        return "Saved " + i.name + ": par level " + amount(i.full_stock, u) + ", low below " +
          amount(Math.ceil(i.threshold * i.full_stock), u) + " (" + K.percent(i.threshold) + ")." +
          ("lead_time_days" in sent || "pack_size" in sent ? leadAndPackText(i, u) : "");
      },
    });
  }

  K.features.push({
    board() {
      const actions = K.$("stock-actions");
      if (actions.querySelector(".add-ingredient")) return;
      actions.append(button("Add ingredient", "add-ingredient", add));
    },
    ingredient(li) {
      const actions = li.querySelector(".row-actions");
      if (actions.querySelector(".edit-ingredient")) return;
      const b = button("Edit", "quiet edit-ingredient", () => edit(li));
      // Read with the ingredient's name: "Edit, button, onion".
      b.setAttribute("aria-describedby", li.querySelector(".name").id);
      actions.append(b);
    },
  });
})();
