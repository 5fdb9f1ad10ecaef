// The operator's Workspaces screen: the teams sharing this gateway and their admin tokens. A new
// token is shown once, here, and never again (only its hash is kept).
import { api } from "../api.js";
import { actionButton, cells, confirmDialog, copyable, field, fill, formatTime, h, showFormError, table, toast } from "../dom.js";

const EXPIRIES = [["", "Never"], ["86400", "1 day"], ["604800", "7 days"], ["2592000", "30 days"], ["7776000", "90 days"],
  ["31536000", "1 year"]];
const ROLES = [["admin", "admin (reads and changes)"], ["viewer", "viewer (reads only)"]];
const unscoped = { scoped: false };  // ?workspace= on /tokens filters the list: these screens want them all

const changed = () => document.dispatchEvent(new CustomEvent("workspaces-changed"));

function workspaceRows(workspaces, tokens, refresh, slot) {
  const headers = ["Workspace", "Created", "Active tokens", ""];
  return table(headers, workspaces.map((w) => h("tr", { dataset: { workspace: w.name } }, cells(headers, [
    h("strong", {}, w.name),
    w.name === "default" ? h("span", { class: "muted" }, "always there") : formatTime(w.created_at),
    String(tokens.filter((t) => t.workspace === w.name && t.state === "active").length),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "quiet small", "aria-label": `Open ${w.name}`,
        onclick: () => document.dispatchEvent(new CustomEvent("workspace-picked", { detail: w.name })) }, "Open"),
      w.name === "default" ? null : actionButton("Delete", async () => {
        const ok = await confirmDialog(`Delete workspace ${w.name}?`,
          "Only an empty workspace can be deleted (no apps, no endpoints). Its tokens stop working at once.", "Delete workspace");
        if (!ok) return;
        await api.del(`/workspaces/${encodeURIComponent(w.name)}`, unscoped);
        toast(`Workspace ${w.name} deleted`);
        changed();
        await refresh();
      }, { cls: "danger small", errorSlot: slot, label: `Delete workspace ${w.name}` })),
  ]))), { caption: "Workspaces" });
}

function tokenRows(tokens, refresh, slot) {
  if (!tokens.length) return h("p", { class: "muted" }, "No workspace tokens yet: create one below.");
  const headers = ["Token", "Workspace", "Role", "Label", "State", "Created", "Expires", ""];
  return table(headers, tokens.map((t) => h("tr", { dataset: { tokenId: t.id } }, cells(headers, [
    h("code", {}, t.id), t.workspace, t.role, t.label || "—",
    h("span", { class: `badge ${t.state === "active" ? "ok" : "warn"}` }, t.state),
    formatTime(t.created_at),
    t.expires_at ? formatTime(t.expires_at) : "never",
    t.state === "active" ? actionButton("Revoke", async () => {
      const ok = await confirmDialog(`Revoke ${t.id}?`,
        `Whoever uses it (${t.role} of ${t.workspace}) is locked out at once, console sessions included.`, "Revoke token");
      if (!ok) return;
      await api.del(`/tokens/${encodeURIComponent(t.id)}`, unscoped);
      toast(`Token ${t.id} revoked`);
      await refresh();
    }, { cls: "danger small", errorSlot: slot, label: `Revoke token ${t.id}` }) : "",
  ]))), { caption: "Workspace tokens" });
}

function createWorkspaceForm(refresh) {
  const name = h("input", { name: "name", required: true, autocomplete: "off", placeholder: "support-team", maxLength: 63 });
  const slot = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "new-workspace" },
    h("h2", { id: "new-workspace" }, "Create a workspace"),
    h("div", { class: "row" }, field("Name", name, "Lower-case letters, digits, - and _; it can't be renamed.")),
    slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Create workspace")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await api.post("/workspaces", { name: name.value.trim() }, unscoped);
      name.value = "";
      toast(`Workspace ${created.name} created`);
      changed();
      await refresh();
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  return form;
}

function createTokenForm(workspaces, refresh, shown) {
  const workspace = h("select", { name: "workspace" }, workspaces.map((w) => h("option", { value: w.name }, w.name)));
  const role = h("select", { name: "role" }, ROLES.map(([v, t]) => h("option", { value: v }, t)));
  const label = h("input", { name: "label", autocomplete: "off", maxLength: 100, placeholder: "e.g. ci, alice" });
  const expires = h("select", { name: "expires_in_seconds" }, EXPIRIES.map(([v, t]) => h("option", { value: v }, t)));
  const slot = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "new-token" },
    h("h2", { id: "new-token" }, "Create a workspace token"),
    h("p", { class: "muted" }, "A token opens one workspace's part of the admin API and of this console, nothing else."),
    h("div", { class: "row" }, field("Workspace", workspace), field("Role", role),
      field("Label", label, "What it is for; shown in lists and nowhere else."), field("Expires", expires)),
    slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Create token")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const body = { workspace: workspace.value, role: role.value, label: label.value.trim() };
    if (expires.value) body.expires_in_seconds = Number(expires.value);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await api.post("/tokens", body, unscoped);
      label.value = "";
      fill(shown, h("section", { class: "card secret", "aria-labelledby": "token-created" },
        h("h2", { id: "token-created" }, `Token ${created.id} created`),
        h("p", {}, `${created.role === "admin" ? "An" : "A"} ${created.role} token of ${created.workspace}. `,
          "Copy it now: it is shown this once and never again."),
        copyable("Workspace token (shown once)", created.token, { secret: true }),
        h("p", { class: "help" }, "It logs in to this console too, showing that workspace only.")));
      await refresh();
      shown.querySelector("input").focus();
    } catch (error) {
      showFormError(form, slot, error);
    } finally { button.disabled = false; }
  });
  return form;
}

export async function workspacesView() {
  const element = h("section", {});
  const shown = h("div", {});  // the once-shown token survives the lists' refresh, not the screen
  const slot = h("div", {});
  const lists = h("div", {});
  const forms = h("div", {});

  async function refresh() {
    const [{ workspaces }, { tokens }] = await Promise.all([api.get("/workspaces", unscoped), api.get("/tokens", unscoped)]);
    fill(lists,
      h("section", { class: "card", "aria-labelledby": "workspace-list" },
        h("h2", { id: "workspace-list" }, "Workspaces"), workspaceRows(workspaces, tokens, refresh, slot)),
      h("section", { class: "card", "aria-labelledby": "token-list" },
        h("h2", { id: "token-list" }, "Tokens"), tokenRows(tokens, refresh, slot)));
    const picked = forms.querySelector('select[name="workspace"]');
    const keep = picked ? picked.value : null;
    fill(forms, createWorkspaceForm(refresh), createTokenForm(workspaces, refresh, shown));
    if (keep && workspaces.some((w) => w.name === keep)) forms.querySelector('select[name="workspace"]').value = keep;
  }
  element.append(h("h1", {}, "Workspaces"),
    h("p", { class: "muted" }, "Teams sharing this gateway: each has its own apps, endpoints and tokens. ",
      "Pick the one every screen shows in the header."),
    shown, slot, lists, forms);
  await refresh();
  return { title: "Workspaces", element };
}
