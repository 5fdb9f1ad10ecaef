import { api, endpointPlugins } from "../api.js";
import { sparkline } from "../charts.js";
import { cells, errorBox, field, h, showFieldErrors, showFormError, table } from "../dom.js";
import { settingsForm } from "../forms.js";
import { canWrite, rememberCreated } from "../state.js";

function endpointRows(endpoints, traffic) {
  const headers = ["Endpoint", "Plugin", "Apps", "State", "Last 30 min"];
  const rows = endpoints.map((e) => h("tr", {}, cells(headers, [
    h("a", { href: `#/endpoints/${encodeURIComponent(e.id)}` }, e.name || e.id),
    e.plugin,
    e.apps.length ? e.apps.join(", ") : h("span", { class: "muted" }, "none"),
    h("span", { class: `badge ${e.enabled ? "ok" : "warn"}` }, e.enabled ? "enabled" : "disabled"),
    sparkline(traffic[e.id] || [], `Traffic of ${e.name || e.id}`),
  ])));
  return table(headers, rows, { caption: "Endpoints" });
}

function createForm(plugins, apps) {
  const plugin = h("select", { name: "plugin", required: true },
    h("option", { value: "" }, "Choose a plugin…"),
    plugins.map((p) => h("option", { value: p.name }, `${p.name} — ${p.description}`)));
  const name = h("input", { name: "name", autocomplete: "off", maxLength: 100, placeholder: "e.g. support-slack" });
  const appBoxes = apps.map((a) => h("label", { class: "inline" },
    h("input", { type: "checkbox", name: "apps", value: a.name }), `${a.name} (${a.mode})`));
  const appsSet = h("fieldset", {}, h("legend", {}, "Apps it answers with"),
    appBoxes.length ? appBoxes : h("p", { class: "muted" }, "No apps yet: ", h("a", { href: "#/apps" }, "add one first"), "."));
  const logBodies = h("input", { type: "checkbox", name: "log_bodies" });
  const rate = h("input", { type: "number", name: "rate_limit_per_minute", min: "0", step: "1", placeholder: "gateway default" });
  const settingsSlot = h("div", {}, h("p", { class: "muted" }, "Pick a plugin to see its settings."));
  let settings = null;
  plugin.addEventListener("change", () => {
    const chosen = plugins.find((p) => p.name === plugin.value);
    settings = chosen ? settingsForm(chosen) : null;
    settingsSlot.replaceChildren(settings ? settings.element : h("p", { class: "muted" }, "Pick a plugin to see its settings."));
  });
  const slot = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "create-endpoint", dataset: { write: "" } },
    h("h2", { id: "create-endpoint" }, "Create an endpoint"),
    h("div", { class: "row" }, field("Plugin", plugin, "What the URL speaks: Slack, Discord, OpenAI, signed webhooks…"),
      field("Name", name, "Optional: how it is listed here.")),
    appsSet, settingsSlot,
    h("fieldset", {}, h("legend", {}, "Options"),
      h("label", { class: "inline" }, logBodies, "Log request bodies (first 4 KiB) in the live traffic view"),
      h("div", { class: "row" }, field("Rate limit per minute", rate, "0 turns the limit off; empty uses GATEWAY_RATE_LIMIT_PER_MINUTE."))),
    slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Create endpoint")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    if (!settings) { slot.replaceChildren(errorBox("Pick a plugin first.")); plugin.focus(); return; }
    const read = settings.read();
    if (read.problems.length) { showFieldErrors(form, read.problems); return; }
    const body = {
      plugin: plugin.value, name: name.value.trim(), settings: read.settings, log_bodies: logBodies.checked,
      apps: appBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
    };
    if (rate.value !== "") body.rate_limit_per_minute = Number(rate.value);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await api.post("/endpoints", body);
      rememberCreated(created);
      location.hash = `#/endpoints/${encodeURIComponent(created.id)}`;
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  return form;
}

export async function endpointsView({ create = false } = {}) {
  const [{ endpoints }, plugins, { apps }, overview] = await Promise.all([
    api.get("/endpoints"), endpointPlugins(), api.get("/apps"), api.get("/overview"),
  ]);
  const form = createForm(plugins, apps);
  const element = h("section", {}, h("h1", {}, "Endpoints"),
    h("div", { class: "card" }, endpoints.length ? endpointRows(endpoints, overview.endpoints)
      : h("p", { class: "muted" }, canWrite() ? "No endpoints yet: create one below." : "No endpoints yet.")),
    form);
  if (create && canWrite()) queueMicrotask(() => form.querySelector("select").focus());
  return { title: "Endpoints", element };
}
