import { api } from "../api.js";
import { actionButton, cells, confirmDialog, field, formatTime, h, showFormError, table, toast } from "../dom.js";

const MODES = ["", "chat", "advanced-chat", "agent-chat", "completion", "workflow"];

function inputForm(app) {
  if (app.inputs === null || app.inputs === undefined) {
    return h("p", { class: "muted" }, "Input form not read yet: press Check.");
  }
  if (!app.inputs.length) return h("p", { class: "muted" }, "The app takes no input variables.");
  const headers = ["Variable", "Type", "Required", "Label"];
  return table(headers, app.inputs.map((f) => h("tr", {}, cells(headers,
    [h("code", {}, f.variable), f.type, f.required ? "yes" : "no", f.label || "—"]))), { caption: `Inputs of ${app.name}` });
}

function appCard(app, refresh) {
  const slot = h("div", {});
  return h("article", { class: "card", "aria-labelledby": `app-${app.name}` },
    h("h2", { id: `app-${app.name}` }, app.name, " ", h("span", { class: "badge" }, app.mode)),
    h("dl", { class: "kv" },
      h("dt", {}, "Base URL"), h("dd", {}, h("code", {}, app.base_url)),
      h("dt", {}, "API key"), h("dd", {}, h("code", {}, app.api_key)),
      app.fallback ? [h("dt", {}, "Fallback"), h("dd", {}, app.fallback)] : null,
      h("dt", {}, "Added"), h("dd", {}, formatTime(app.created_at))),
    h("h3", {}, "Input form"), inputForm(app), slot,
    h("div", { class: "actions" },
      actionButton("Check", async () => {
        const checked = await api.post(`/apps/${encodeURIComponent(app.name)}/check`);
        const info = checked.info || {};
        slot.replaceChildren(h("p", { class: "notice", role: "status" },
          `The key works: ${info.name || app.name} (${info.mode || app.mode}).`));
        await refresh(false);
      }, { cls: "quiet", errorSlot: slot, label: `Check ${app.name}` }),
      actionButton("Remove", async () => {
        if (!(await confirmDialog(`Remove ${app.name}?`, "Endpoints bound to it must be changed first. Its key is deleted.", "Remove"))) return;
        await api.del(`/apps/${encodeURIComponent(app.name)}`);
        toast(`${app.name} removed`);
        await refresh(true);
      }, { cls: "danger", errorSlot: slot, label: `Remove ${app.name}` })));
}

export async function appsView() {
  const list = h("div", {});
  const element = h("section", {}, h("h1", {}, "Apps"),
    h("p", { class: "muted" }, "The Dify apps endpoints answer with. The key is checked and the mode detected when you add one."));
  async function refresh() {
    const { apps } = await api.get("/apps");
    list.replaceChildren(...(apps.length ? apps.map((a) => appCard(a, refresh)) : [h("p", { class: "muted" }, "No apps yet: add one below.")]));
  }

  const name = h("input", { name: "name", required: true, autocomplete: "off", placeholder: "support" });
  const baseUrl = h("input", { name: "base_url", type: "url", required: true, value: "https://api.dify.ai/v1", autocomplete: "off" });
  const key = h("input", { name: "api_key", type: "password", required: true, autocomplete: "new-password", placeholder: "app-…" });
  const mode = h("select", { name: "mode" }, MODES.map((m) => h("option", { value: m }, m || "Detect from the app")));
  const slot = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "add-app", dataset: { write: "" } },
    h("h2", { id: "add-app" }, "Add an app"),
    h("div", { class: "row" },
      field("Name", name, "Letters, digits, - and _; endpoints refer to the app by it."),
      field("Base URL", baseUrl, "Dify's Service API base, ending in /v1."),
      field("API key", key, "From the app's API Access page in Dify."),
      field("Mode", mode, "Detected from GET /info when left on Detect.")),
    slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Add app")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    slot.replaceChildren();
    try {
      const body = { name: name.value.trim(), base_url: baseUrl.value.trim(), api_key: key.value.trim() };
      if (mode.value) body.mode = mode.value;
      const added = await api.post("/apps", body);
      key.value = "";
      name.value = "";
      slot.replaceChildren(h("p", { class: "notice", role: "status" }, `Added ${added.name}: a ${added.mode} app, key checked.`));
      await refresh();
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  element.append(list, form);
  await refresh();
  return { title: "Apps", element };
}
