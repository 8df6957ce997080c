// Looking ahead on the page: beside each stock bar how long it lasts at the pace of
// recent use ("lasts 4.2 days · runs out Thu 14:00", in this browser's time zone), marked
// in words as well as colour when it runs out before a delivery ordered now would come
// (days left < the ingredient's lead_time_days), and a small "To order" list of the
// suggested orders. All from each ingredient's `forecast` in GET /dashboard: no call of
// its own.
"use strict";

(function () {
  const K = window.Kitchen;
  const { el, amount, keyed, $ } = K;
  const days = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const weekday = new Intl.DateTimeFormat("en-GB", { weekday: "short" });
  const dayMonth = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
  const hourMinute = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });
  const SIX_DAYS_MS = 6 * 24 * 3600 * 1000;

  // When it runs out, in local words: "Thu 14:00"; from six days ahead a weekday alone
  // could be read as this week's, so the date too: "Thu 10 Dec 14:00".
  function runsOut(iso) {
    const at = new Date(iso);
    const far = at.getTime() - Date.now() >= SIX_DAYS_MS;
    return weekday.format(at) + " " + (far ? dayMonth.format(at) + " " : "") + hourMinute.format(at);
  }

  // "lasts 4.2 days"; under 0.05 days (1.2 hours) it would read "0 days".
  function lasts(n) {
    if (n < 0.05) return "lasts under 2 hours";
    return "lasts " + days.format(n) + (days.format(n) === "1" ? " day" : " days");
  }

  // Whether it runs out before a delivery ordered now would come.
  function short(ing) {
    const f = ing.forecast;
    return Boolean(f && f.days_left !== null && f.days_left < ing.lead_time_days);
  }

  function drawAhead(li, ing) {
    let node = li.querySelector(".ahead");
    if (!node) {
      node = el("p", "ahead");
      // Made once, then only their words change: a test or a screen reader holding one
      // keeps it across the refresh every 2 s.
      const runs = el("span", "runs-out", " · runs out ");
      runs.append(el("time"));
      node.append(el("span", "lasts"), runs, el("strong", "short-words"));
      li.querySelector(".detail").after(node);
    }
    const f = ing.forecast;
    const marked = short(ing);
    li.classList.toggle("short", marked);
    node.dataset.method = f ? f.method : "";
    const runs = node.querySelector(".runs-out");
    let at = null;
    if (!f || f.daily_use === null) {
      node.querySelector(".lasts").textContent = "no use yet";
    } else if (f.days_left === null) {
      node.querySelector(".lasts").textContent = f.daily_use === 0 ? "no use lately" : "lasts over a year";
    } else if (ing.stock <= 0) {
      node.querySelector(".lasts").textContent = "out of stock";
    } else {
      node.querySelector(".lasts").textContent = lasts(f.days_left);
      at = f.runs_out_at;
    }
    runs.hidden = !at;
    const time = runs.querySelector("time");
    time.dateTime = at || "";
    time.textContent = at ? runsOut(at) : "";
    const delivery = ing.lead_time_days === 1 ? "1 day" : ing.lead_time_days + " days";
    node.querySelector(".short-words").textContent = !marked
      ? ""
      : (ing.stock <= 0 ? "out until the next delivery" : "runs out before the next delivery") +
        " (it takes " + delivery + ")";
  }

  // Most urgent first, as GET /reorder lists them: earliest to run out, then those that
  // do not run out, then by name.
  function urgency(a, b) {
    const at = (i) => (i.forecast.runs_out_at ? Date.parse(i.forecast.runs_out_at) : Infinity);
    return at(a) - at(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  function drawOrders(data) {
    const lines = data.ingredients
      .filter((i) => i.forecast && i.forecast.suggested_order > 0)
      .sort(urgency);
    keyed($("to-order").querySelector("tbody"), lines, (i) => i.id, () => {
      const tr = el("tr");
      const name = el("th", "to-order-name");
      name.scope = "row";
      tr.append(name, el("td", "num suggested"), el("td", "packs"));
      return tr;
    }, (tr, i) => {
      const unit = i.unit || "g";
      const suggested = i.forecast.suggested_order;
      tr.dataset.ingredient = i.name;
      tr.classList.toggle("short", short(i));
      tr.querySelector(".to-order-name").textContent = i.name;
      tr.querySelector(".suggested").textContent = amount(suggested, unit);
      tr.querySelector(".packs").textContent = i.pack_size
        ? K.number.format(suggested / i.pack_size) + " \u00d7 " + amount(i.pack_size, unit)
        : "any amount";
    });
    $("to-order").hidden = lines.length === 0;
    $("to-order-empty").hidden = lines.length > 0;
  }

  K.features.push({
    ingredient(li, ing) {
      drawAhead(li, ing);
    },
    board(data) {
      drawOrders(data);
    },
  });
})();
