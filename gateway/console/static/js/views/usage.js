// Usage and cost this month on the Overview: per app and per endpoint as bar charts, and each
// monthly budget against what it has used (from GET /usage and GET /budgets).
import { api } from "../api.js";
import { barChart } from "../charts.js";
import { actionButton, cells, field, h, showFormError, table, toast } from "../dom.js";

const number = new Intl.NumberFormat();

export async function usageData() {
  const [byApp, byEndpoint, { budgets }, { endpoints }] = await Promise.all([
    api.get("/usage?by=app"), api.get("/usage?by=endpoint"), api.get("/budgets"), api.get("/endpoints")]);
  return { byApp, byEndpoint, budgets, names: Object.fromEntries(endpoints.map((e) => [e.id, e.name || e.id])) };
}

const currencies = (report) => [...new Set([report.total, ...report.rows].flatMap((r) => Object.keys(r.cost || {})))];

function charts(report, key, names, what) {
  const width = window.innerWidth >= 760 ? Math.min(1100, window.innerWidth) / 2 - 60 : window.innerWidth - 56;
  const label = (r) => names[r[key]] || r[key];
  const parts = [h("div", {}, h("h3", {}, `Tokens per ${what}`),
    barChart(report.rows.map((r) => ({ label: label(r), value: r.total_tokens,
      text: `${number.format(r.total_tokens)} tokens, ${r.answers} ${r.answers === 1 ? "answer" : "answers"}` })),
    `Tokens per ${what} this month`, width))];
  for (const currency of currencies(report)) {
    parts.push(h("div", {}, h("h3", {}, `Cost per ${what} (${currency})`),
      barChart(report.rows.filter((r) => r.cost[currency]).map((r) => ({ label: label(r), value: Number(r.cost[currency]),
        text: `${currency} ${r.cost[currency]}` })), `Cost per ${what} this month, ${currency}`, width)));
  }
  return parts;
}

function spentOf(budget, data) {
  const rows = budget.scope === "app" ? data.byApp.rows.filter((r) => r.app === budget.target)
    : budget.scope === "endpoint" ? data.byEndpoint.rows.filter((r) => r.endpoint === budget.target) : [data.byApp.total];
  const row = rows[0];
  if (!row) return 0;
  return budget.tokens !== undefined ? row.total_tokens : Number((row.cost || {})[budget.currency] || 0);
}

function budgetRows(data, redraw, slot) {
  if (!data.budgets.length) return h("p", { class: "muted" }, "No budgets: answers are not limited.");
  const headers = ["Budget", "Limit", "Used this month", ""];
  return table(headers, data.budgets.map((b) => {
    const limit = b.tokens !== undefined ? Number(b.tokens) : Number(b.cost);
    const spent = spentOf(b, data);
    const share = limit ? spent / limit : 0;
    const warnAt = b.warn_at || 0.8;
    const unit = b.tokens !== undefined ? "tokens" : b.currency;
    const what = b.scope === "workspace" ? "the whole workspace"
      : `${b.scope} ${b.scope === "endpoint" ? (data.names[b.target] || b.target) : b.target}`;
    const bar = h("progress", { max: String(limit), value: String(Math.min(spent, limit)),
      class: share >= 1 ? "over" : share >= warnAt ? "near" : "", "aria-label": `${what}: ${Math.round(share * 100)}% used` });
    return h("tr", { dataset: { budget: b.id } }, cells(headers, [
      what,
      unit === "tokens" ? `${number.format(limit)} tokens` : `${unit} ${b.cost}`,
      h("div", { class: "grow" }, bar, h("span", { class: share >= 1 ? "bad" : share >= warnAt ? "warn" : "muted" },
        `${unit === "tokens" ? number.format(spent) : spent.toFixed(4)} (${Math.round(share * 100)}%)`,
        share >= 1 ? " — spent: answers are refused until next month" : "")),
      actionButton("Delete", async () => {
        await api.del(`/budgets/${encodeURIComponent(b.id)}`);
        toast("Budget deleted");
        await redraw();
      }, { cls: "quiet small", errorSlot: slot, label: `Delete the budget of ${what}` }),
    ]));
  }), { caption: "Budgets" });
}

export function usageCards(data, redraw, budgetSlot) {
  const { byApp, byEndpoint } = data;
  const total = byApp.total;
  const costs = Object.entries(total.cost || {}).map(([c, v]) => `${c} ${v}`).join(", ");
  return [
    h("section", { class: "card", "aria-labelledby": "usage-title" },
      h("h2", { id: "usage-title" }, "Usage and cost this month"),
      h("p", { class: "help" }, `${byApp.from} to ${byApp.to} (UTC days): ${total.answers} answers, `,
        `${number.format(total.total_tokens)} tokens${costs ? `, ${costs}` : ""}, as Dify reported them.`),
      byApp.rows.length
        ? h("div", { class: "usage-grid" }, charts(byApp, "app", {}, "app"), charts(byEndpoint, "endpoint", data.names, "endpoint"))
        : h("p", { class: "muted" }, "No answers recorded this month yet.")),
    h("section", { class: "card", "aria-labelledby": "budgets-title" },
      h("h2", { id: "budgets-title" }, "Monthly budgets"), budgetSlot, budgetRows(data, redraw, budgetSlot)),
  ];
}

// Set a budget: kept apart from the cards, which redraw every few seconds.
export function budgetForm(redraw) {
  const scope = h("select", { name: "scope" },
    [["app", "An app"], ["endpoint", "An endpoint"], ["workspace", "The whole workspace"]].map(([v, t]) => h("option", { value: v }, t)));
  const target = h("input", { name: "target", autocomplete: "off", placeholder: "app name or endpoint id" });
  const kind = h("select", { name: "kind" }, h("option", { value: "tokens" }, "Tokens"), h("option", { value: "cost" }, "Cost"));
  const amount = h("input", { name: "amount", type: "number", min: "0", step: "any", required: true });
  const currency = h("input", { name: "currency", value: "USD", autocomplete: "off", maxLength: 10 });
  const slot = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "set-budget", dataset: { write: "" } },
    h("h2", { id: "set-budget" }, "Set a monthly budget"),
    h("p", { class: "help" }, "Once a budget is used up, answers it covers are refused until the next calendar month (UTC). Setting the same limit again replaces it."),
    h("div", { class: "row" }, field("Covers", scope), field("Target", target, "The app's name or the endpoint's id; empty for the workspace."),
      field("Limit in", kind), field("Amount", amount), field("Currency", currency, "For a cost limit.")),
    slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Set budget")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const body = { scope: scope.value, target: scope.value === "workspace" ? "" : target.value.trim() };
    if (kind.value === "tokens") body.tokens = Number(amount.value);
    else { body.cost = amount.value; body.currency = currency.value.trim() || "USD"; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.put("/budgets", body);
      toast("Budget set");
      amount.value = "";
      await redraw();
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  return form;
}
