import { api, endpointPlugins } from "../api.js";
import { actionButton, confirmDialog, copyable, field, fill, formatTime, h, showFieldErrors, showFormError, toast } from "../dom.js";
import { settingsForm } from "../forms.js";
import { nextStep } from "../nextsteps.js";
import { canWrite, takeCreated } from "../state.js";

const GRACES = [[0, "none: the old URL stops now"], [3600, "1 hour"], [86400, "24 hours"], [604800, "7 days"]];

function onceShown(created) {
  if (!created) return null;
  const secrets = Object.entries(created.secrets || {});
  return h("section", { class: "card secret", "aria-labelledby": "created" },
    h("h2", { id: "created" }, "Endpoint created"),
    secrets.length ? [h("p", {}, "Copy these now: they are shown this once and never again."),
      secrets.map(([name, value]) => copyable(`${name} (shown once)`, value, { secret: true }))] : h("p", {}, "Copy its URL below."));
}

function editForm(endpoint, plugin, refresh) {
  const settings = settingsForm(plugin, { current: endpoint.settings });
  const name = h("input", { name: "name", value: endpoint.name, maxLength: 100, autocomplete: "off" });
  const logBodies = h("input", { type: "checkbox", name: "log_bodies", checked: endpoint.log_bodies });
  const slot = h("div", {});
  const form = h("form", { class: "card", id: "edit-settings", "aria-labelledby": "edit-title", tabIndex: -1 },
    h("h2", { id: "edit-title" }, "Settings"), field("Name", name), settings.element,
    h("label", { class: "inline" }, logBodies, "Log request bodies (first 4 KiB)"),
    slot, h("div", { class: "actions" }, h("button", { type: "submit", dataset: { write: "" } }, "Save settings")));
  if (!canWrite()) for (const control of form.elements) control.disabled = true;  // shown, not changeable
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const read = settings.read();
    if (read.problems.length) { showFieldErrors(form, read.problems); return; }
    const body = { settings: read.settings };
    if (read.unset.length) body.unset = read.unset;
    if (name.value.trim() !== endpoint.name) body.name = name.value.trim();
    if (logBodies.checked !== endpoint.log_bodies) body.log_bodies = logBodies.checked;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.patch(`/endpoints/${encodeURIComponent(endpoint.id)}`, body);
      toast("Settings saved");
      await refresh();
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  return form;
}

export async function endpointView(id) {
  const path = `/endpoints/${encodeURIComponent(id)}`;
  const created = takeCreated(id);
  const element = h("section", {});
  const plugins = await endpointPlugins();

  async function refresh(rotatedUrl) {
    const endpoint = await api.get(path);
    const plugin = plugins.find((p) => p.name === endpoint.plugin);
    const slot = h("div", {});
    const grace = h("select", { name: "grace" }, GRACES.map(([s, t]) => h("option", { value: String(s) }, t)));
    grace.value = "86400";
    fill(element,
      h("h1", {}, endpoint.name || endpoint.id, " ",
        h("span", { class: `badge ${endpoint.enabled ? "ok" : "warn"}` }, endpoint.enabled ? "enabled" : "disabled")),
      onceShown(created),
      h("section", { class: "card", "aria-labelledby": "url-title" },
        h("h2", { id: "url-title" }, "URL"),
        copyable("Endpoint URL", endpoint.url),
        rotatedUrl ? h("p", { class: "notice", role: "status" }, "New URL: give it to the caller now.") : null,
        endpoint.previous_urls_expire_at.length
          ? h("p", { class: "muted" }, "Earlier URLs keep working until ", endpoint.previous_urls_expire_at.map(formatTime).join(", "), ".")
          : null,
        h("dl", { class: "kv" },
          h("dt", {}, "Plugin"), h("dd", {}, endpoint.plugin),
          h("dt", {}, "Apps"), h("dd", {}, endpoint.apps.join(", ") || "none"),
          h("dt", {}, "Id"), h("dd", {}, h("code", {}, endpoint.id)),
          h("dt", {}, "Created"), h("dd", {}, formatTime(endpoint.created_at))),
        h("div", { class: "actions" },
          h("a", { href: `#/endpoints/${encodeURIComponent(endpoint.id)}/traffic` }, "Live traffic →"))),
      nextStep(endpoint, plugin, created),
      h("section", { class: "card", "aria-labelledby": "manage", dataset: { write: "" } },
        h("h2", { id: "manage" }, "Manage"),
        h("div", { class: "row" }, field("Old URL keeps working for", grace, "After rotating, callers have this long to switch.")),
        slot,
        h("div", { class: "actions" },
          actionButton("Rotate URL", async () => {
            await api.post(`${path}/rotate`, { grace_seconds: Number(grace.value) });
            toast("URL rotated");
            await refresh(true);
          }, { errorSlot: slot }),
          actionButton(endpoint.enabled ? "Disable" : "Enable", async () => {
            await api.post(`${path}/${endpoint.enabled ? "disable" : "enable"}`);
            toast(endpoint.enabled ? "Endpoint disabled" : "Endpoint enabled");
            await refresh();
          }, { cls: "quiet", errorSlot: slot }),
          actionButton("Delete", async () => {
            const ok = await confirmDialog(`Delete ${endpoint.name || endpoint.id}?`,
              "Its URL stops working at once, and its request log and stored data are deleted. This can't be undone.", "Delete endpoint");
            if (!ok) return;
            await api.del(path);
            toast("Endpoint deleted");
            location.hash = "#/endpoints";
          }, { cls: "danger", errorSlot: slot }))),
      plugin ? editForm(endpoint, plugin, refresh) : h("p", { class: "error" }, `The plugin ${endpoint.plugin} is not installed.`),
    );
  }
  await refresh();
  return { title: "Endpoint", element };
}
