// What happened to the stock: History on each ingredient (its stock over time as a chart,
// with the threshold line, and its ledger newest first, page by page), the cause of each
// alert and whether it is still open, and which ingredient limits each product. Reads
// GET /ingredients/{id}/ledger as curl users do; the chart is drawn by the vendored uPlot
// (kitchen/static/vendor/uplot/, see its VERSION), which sets its styles from script
// only (the page's CSP has no 'unsafe-inline').
"use strict";

(function () {
  const K = window.Kitchen;
  const { el, button, amount, change, timeEl, words } = K;

  // Ledger rows per page of the table (one more is asked, to know whether there are older).
  const PAGE = 20;

  // A ledger row's reason, in words.
  const REASONS = {
    initial: "starting stock",
    order: "used by an order",
    restock: "restock",
    count: "count",
    waste: "waste",
    refund: "refund, stock put back",
    compensation: "given back (payment not taken)",
  };

  // What raised an alert (alert `cause`), and what resolved it (alert `resolved_by`).
  const CAUSES = {
    count: "by a count",
    waste: "by waste",
    initial: "when it was created",
    levels: "by a new par level",
  };
  const RESOLVERS = {
    restock: "a restock",
    count: "a count",
    refund: "a refund",
    compensation: "stock given back",
    levels: "a new par level",
  };

  const hourMinute = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });
  const dayMonth = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });

  // The time axis's steps (s): a second at the finest (the table has the exact times).
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400];

  // The time axis's labels, as the table writes times: "14:05:30", "14:05", "3 Nov".
  function ticks(u, splits, axis, space, step) {
    return splits.map((s) => {
      const time = new Date(s * 1000);
      if (step >= 86400) return dayMonth.format(time);
      return step >= 60 ? hourMinute.format(time) : K.clock.format(time);
    });
  }

  // "at 14:05" today, "on 3 Nov at 14:05" before.
  function at(iso) {
    const time = new Date(iso);
    const today = new Date().toDateString() === time.toDateString();
    return (today ? "" : "on " + dayMonth.format(time) + " ") + "at " + hourMinute.format(time);
  }

  // Who made a ledger row: the API key's name; "order #N" for what processing did for an
  // order (or payments gave back for it); "Kitchen" for processing's rows without one;
  // "not recorded" for a person's change made without a key (development) or before
  // keys were recorded.
  function who(entry) {
    if (entry.key) return entry.key;
    if (entry.order_id != null) return "order #" + entry.order_id;
    if (entry.reason === "order" || entry.reason === "compensation") return "Kitchen";
    return "not recorded";
  }

  function entryAmount(entry) {
    return entry.amount !== undefined ? entry.amount : entry.grams;
  }

  // -- the History dialog -----------------------------------------------------------------

  let dialogCount = 0;

  // The colours of the chart, from the stylesheet (a canvas cannot use CSS variables).
  function colour(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function open(li) {
    const ing = li.item;
    const unit = ing.unit || "g";
    const line = ing.threshold * ing.full_stock; // below this the ingredient is low
    const opener = document.activeElement;
    const id = "history" + ++dialogCount;

    const dialog = el("dialog", "form-dialog history-dialog");
    dialog.setAttribute("aria-labelledby", id + "-title");
    const head = el("div", "history-head");
    const title = el("h2", "", "History of " + ing.name);
    title.id = id + "-title";
    const close = button("Close", "quiet", () => dialog.close());
    head.append(title, close);
    // Said once the ledger is read: its newest row is the stock now (the page's row may
    // be up to one refresh older).
    const intro = el("p", "intro", "Reading the ledger…");
    const now = (stock) => "Now " + amount(stock, unit) + " of " + amount(ing.full_stock, unit) +
      " · low below " + amount(Math.ceil(line), unit) + ".";

    const figure = el("figure", "history-chart");
    const box = el("div", "chart-box");
    box.setAttribute("role", "img");
    const key = el("figcaption", "chart-key");
    key.append(
      el("span", "key-stock", "Stock after each change"),
      el("span", "key-line", "Threshold: low below " + amount(Math.ceil(line), unit)),
    );
    figure.append(box, key);

    const problem = el("p", "form-error");
    problem.setAttribute("role", "alert");
    const said = el("p", "history-said");
    said.setAttribute("role", "status");

    const wrap = el("div", "ledger-wrap");
    // Focusable, so that a keyboard can scroll a table wider than a phone.
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-labelledby", id + "-caption");
    const table = el("table", "ledger");
    const caption = el("caption", "", "Every change of " + ing.name + "'s stock, newest first");
    caption.id = id + "-caption";
    const headRow = el("tr");
    for (const [label, cls] of [["When", ""], ["Change", "num"], ["Reason", ""], ["Who", ""],
      ["Note", ""], ["Stock after", "num"]]) {
      const th = el("th", cls, label);
      th.scope = "col";
      headRow.append(th);
    }
    const thead = el("thead");
    thead.append(headRow);
    const tbody = el("tbody");
    table.append(caption, thead, tbody);
    wrap.append(table);

    const older = button("Older entries", "quiet older", () => more());
    older.hidden = true;
    const buttons = el("div", "form-buttons");
    buttons.append(older);

    dialog.append(head, intro, figure, problem, said, wrap, buttons);
    document.body.append(dialog);

    const entries = []; // newest first, as listed
    let chart = null;
    let busy = false;

    function height(width) {
      return Math.round(Math.min(300, Math.max(180, width * 0.42)));
    }

    function resize() {
      if (!chart) return;
      const width = box.clientWidth;
      chart.setSize({ width, height: height(width) });
    }

    // The chart's data: times (s) ascending, the stock after each change, and the
    // threshold line at each time; then now, where the latest stock still stands (no
    // point there: it is not a change), so that the lines reach the present.
    function series() {
      const rows = entries.slice().reverse();
      const times = rows.map((e) => Date.parse(e.at) / 1000);
      const present = Math.max(Date.now() / 1000, times[times.length - 1] + 1);
      return [
        [...times, present],
        [...rows.map((e) => e.stock_after), entries[0].stock_after],
        [...rows.map(() => line), line],
      ];
    }

    // A point on each change, none at "now".
    function changes(u) {
      return u.data[0].slice(0, -1).map((x, i) => i);
    }

    function describe() {
      const first = entries[entries.length - 1];
      const last = entries[0];
      box.setAttribute("aria-label",
        "Chart of " + ing.name + "'s stock over the " + entries.length + " changes listed below: " +
        "from " + amount(first.stock_after, unit) + " to " + amount(last.stock_after, unit) +
        "; low below " + amount(Math.ceil(line), unit) + ".");
    }

    function draw() {
      if (!entries.length) return;
      describe();
      if (chart) {
        chart.setData(series());
        return;
      }
      const stroke = colour("--focus", "#0b5cd5");
      const low = colour("--low", "#b42318");
      const ink = colour("--muted", "#57606a");
      const width = box.clientWidth;
      chart = new uPlot({
        width,
        height: height(width),
        legend: { show: false }, // the figcaption says what each line is
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          // From 0, and high enough for the par level and the highest stock shown.
          y: { range: (u, min, max) => [0, Math.max(max, ing.full_stock, line, 1) * 1.08] },
        },
        axes: [
          { stroke: ink, grid: { stroke: "#e6e9ed" }, incrs: STEPS, values: ticks },
          {
            stroke: ink,
            size: 72,
            grid: { stroke: "#e6e9ed" },
            values: (u, splits) => splits.map((v) => amount(v, unit)),
          },
        ],
        series: [
          {},
          {
            label: "Stock",
            stroke,
            width: 2,
            // Stock holds until the next change: steps, not slopes.
            paths: uPlot.paths.stepped({ align: 1 }),
            points: { show: true, size: 10, fill: stroke, stroke, filter: changes },
          },
          {
            label: "Threshold",
            stroke: low,
            width: 2,
            dash: [6, 4],
            points: { show: false },
          },
        ],
      }, series(), box);
      box.uplot = chart; // for the tests, which read what the chart was given
    }

    function addRows(page) {
      for (const e of page) {
        const tr = el("tr");
        tr.dataset.entry = String(e.id);
        const eunit = e.unit || unit;
        const reason = REASONS[e.reason] || words(e.reason);
        const when = el("td", "ledger-when");
        when.append(timeEl(e.at));
        tr.append(
          when,
          el("td", "num ledger-change", change(entryAmount(e), eunit)),
          el("td", "ledger-why", reason),
          el("td", "ledger-who", who(e)),
          el("td", "ledger-note", e.note || ""),
          el("td", "num ledger-after", amount(e.stock_after, eunit)),
        );
        tbody.append(tr);
      }
    }

    // A page of the ledger, older than what is listed. Said in the dialog; the focus
    // stays on "Older entries" while there are more, else goes to the first row added.
    async function more() {
      if (busy) return;
      busy = true;
      // Not disabled: a disabled button would lose the keyboard's focus.
      older.setAttribute("aria-busy", "true");
      problem.textContent = "";
      const first = entries.length === 0;
      const last = entries[entries.length - 1];
      const query = "?limit=" + (PAGE + 1) + (last ? "&before=" + last.id : "");
      let result;
      try {
        result = await K.api("GET", "/ingredients/" + ing.id + "/ledger" + query);
      } finally {
        busy = false;
        older.removeAttribute("aria-busy");
      }
      if (!dialog.isConnected) return;
      if (!result.ok) {
        if (first) intro.textContent = now(ing.stock);
        problem.textContent = K.explain(result).general;
        return;
      }
      const page = result.data.slice(0, PAGE);
      const hadFocus = document.activeElement === older;
      entries.push(...page);
      addRows(page);
      older.hidden = result.data.length <= PAGE;
      draw();
      if (first) intro.textContent = now(entries.length ? entries[0].stock_after : ing.stock);
      if (!entries.length) said.textContent = "No changes recorded.";
      else if (!first) {
        said.textContent = page.length + " older " + (page.length === 1 ? "entry" : "entries") +
          " shown" + (older.hidden ? "; that is all." : ".");
      }
      if (hadFocus && older.hidden && page.length) {
        const cell = tbody.children[entries.length - page.length].querySelector("td");
        cell.tabIndex = -1;
        cell.focus();
      }
    }

    window.addEventListener("resize", resize);
    dialog.addEventListener("close", () => {
      window.removeEventListener("resize", resize);
      if (chart) chart.destroy();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
    });
    dialog.showModal();
    close.focus();
    more();
  }

  // -- alerts and products ----------------------------------------------------------------

  function drawCause(li, a) {
    const p = li.querySelector(".cause");
    p.replaceChildren();
    li.dataset.status = a.status || "";
    let cause = "";
    if (a.cause === "order") cause = a.order_id != null ? "by order #" + a.order_id : "by an order";
    else if (a.cause) cause = CAUSES[a.cause] || "by " + words(a.cause);
    if (cause) p.append(el("span", "alert-cause", cause.charAt(0).toUpperCase() + cause.slice(1)));
    if (!a.status) return;
    if (cause) p.append(document.createTextNode(" · "));
    const state = el("span", "alert-state " + a.status);
    if (a.status === "resolved") {
      const by = a.resolved_by ? RESOLVERS[a.resolved_by] || words(a.resolved_by) : "";
      state.append(document.createTextNode("resolved" + (by ? " by " + by : "")));
      if (a.resolved_at) {
        const time = el("time", "", " " + at(a.resolved_at));
        time.dateTime = a.resolved_at;
        state.append(time);
      }
    } else {
      state.textContent = words(a.status);
    }
    p.append(state);
  }

  K.features.push({
    ingredient(li) {
      const actions = li.querySelector(".row-actions");
      if (actions.querySelector(".history")) return;
      const b = button("History", "quiet history", () => open(li));
      // Read with the ingredient's name: "History, button, onion".
      b.setAttribute("aria-describedby", li.querySelector(".name").id);
      actions.append(b);
    },
    alert(li, a) {
      drawCause(li, a);
    },
    product(tr, p, data) {
      // dashboard.js puts the limiting ingredient's name in .limit: say what it means.
      const limit = p.limited_by != null ? data.ingredients.find((i) => i.id === p.limited_by) : null;
      tr.querySelector(".limit").textContent = limit ? "limited by " + limit.name : "";
    },
  });
})();
