// Plugins: the gateway's own and the installed Dify plugin packages, with where each comes from,
// its version, who signed it and what it may do. The operator installs, upgrades and removes Dify
// packages here: a package is verified first and installed only once its result is confirmed.
import { api } from "../api.js";
import { actionButton, confirmDialog, errorBox, field, fill, formatTime, h, toast } from "../dom.js";
import { isOperator } from "../state.js";

const pluginPath = (name) => `/plugins/${name.split("/").map(encodeURIComponent).join("/")}`;

// Who vouches for a package, in plain words.
export function signatureText(signed, signer) {
  if (!signed) return "Unsigned: nobody vouches for this code";
  if (signer === "dify") return "Signed by Dify (its official key)";
  if (signer && signer.startsWith("key:")) return `Signed with a key you trust, fingerprint ${signer.slice(4)}`;
  return `Signed (${signer})`;
}

function signatureBadge(signed) {
  return h("span", { class: `badge ${signed ? "ok" : "warn"}` }, signed ? "signed" : "unsigned");
}

// Pick a package file, see its verification, then confirm: `submit(file, allowUnsigned)` does the rest.
function packageChooser({ title, label, verb, submit, expect = null }) {
  const file = h("input", { type: "file", name: "package", accept: ".difypkg,application/zip" });
  const result = h("div", { "aria-live": "polite" });
  file.addEventListener("change", async () => {
    result.replaceChildren();
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    result.replaceChildren(h("p", { class: "muted" }, `Verifying ${chosen.name}…`));
    let verified;
    try {
      verified = await api.upload("POST", "/plugins/verify", chosen);
    } catch (error) {
      fill(result, errorBox(error), h("p", { class: "help" }, "Pick a .difypkg file made by `dify plugin package` or `dify-gateway plugins pack`."));
      return;
    }
    const identity = verified.identity || "unknown";
    if (expect && !identity.startsWith(expect + ":")) {
      fill(result, errorBox(`This package is ${identity.split(":")[0]}, not ${expect}: pick a package of ${expect}.`));
      return;
    }
    const out = h("div", {});
    const reset = () => { file.value = ""; result.replaceChildren(); };
    const go = async (allowUnsigned) => {
      const done = await submit(chosen, allowUnsigned);
      reset();
      toast(`${done.name} ${done.version} ${verb === "Install" ? "installed" : "upgraded"} (${done.signature})`);
    };
    const cancel = h("button", { type: "button", class: "quiet", onclick: reset }, "Cancel");
    const facts = h("dl", { class: "kv" }, h("dt", {}, "Package"), h("dd", {}, h("code", {}, identity)),
      h("dt", {}, "Signature"), h("dd", {}, signatureText(verified.signed, verified.signer)),
      h("dt", {}, "Verification"), h("dd", {}, verified.reason));
    if (verified.signed) {
      fill(result, h("section", { class: "notice", "aria-labelledby": "verified-title" },
        h("h3", { id: "verified-title" }, "Verified: ", signatureBadge(true)), facts,
        h("div", { class: "actions" }, actionButton(`${verb} ${identity.split("@")[0]}`, () => go(false), { errorSlot: out }), cancel),
        out));
      return;
    }
    const understood = h("input", { type: "checkbox", name: "allow_unsigned" });
    const unsigned = actionButton(`${verb} unsigned`, () => go(true), { cls: "danger", errorSlot: out });
    unsigned.disabled = true;
    understood.addEventListener("change", () => { unsigned.disabled = !understood.checked; });
    fill(result, h("section", { class: "warning", role: "alert", "aria-labelledby": "unsigned-title" },
      h("h3", { id: "unsigned-title" }, "Not signed: ", signatureBadge(false)), facts,
      h("p", {}, "An unsigned package runs code that neither Dify nor a key you trust vouches for, with the permissions it declares. ",
        "Install it only if you built it yourself or trust where it came from."),
      h("label", { class: "inline" }, understood, "I trust this package: install it without a signature"),
      h("div", { class: "actions" }, unsigned, cancel), out));
  });
  return h("div", { dataset: { operator: "" } }, title ? h("h3", {}, title) : null,
    field(label, file, "It is verified first; nothing is installed until you confirm."), result);
}

function difyCard(p, refresh) {
  const slot = h("div", {});
  const remove = async (disableEndpoints) => {
    const removed = await api.del(`${pluginPath(p.name)}${disableEndpoints ? "?disable_endpoints=true" : ""}`, { scoped: false });
    const disabled = removed.disabled_endpoints;
    toast(`${removed.deleted} removed${disabled.length ? `; endpoints disabled: ${disabled.join(", ")}` : ""}`);
    await refresh();
  };
  const removeButton = actionButton("Remove", async () => {
    if (!(await confirmDialog(`Remove ${p.name}?`, "Its code and files are deleted. Endpoints using it must stop first.", "Remove plugin"))) return;
    try {
      await remove(false);
    } catch (error) {
      if (error.status !== 409) throw error;
      fill(slot, h("div", { class: "warning", role: "alert" },
        // The API's message ends with the CLI's flag; the button below is the console's way.
        h("p", {}, "Not removed: ", error.message.split("; remove it with")[0], "."),
        h("p", {}, "You can disable those endpoints and remove the plugin: their URLs are kept, and work again once the plugin is back."),
        h("div", { class: "actions" }, actionButton("Disable its endpoints and remove", async () => {
          const ok = await confirmDialog(`Disable the endpoints of ${p.name}?`,
            "They stop answering until the plugin is installed again and they are enabled.", "Disable endpoints and remove");
          if (ok) await remove(true);
        }, { cls: "danger", errorSlot: slot }))));
    }
  }, { cls: "danger", errorSlot: slot, label: `Remove ${p.name}` });
  removeButton.dataset.operator = "";
  return h("article", { class: "card", "aria-labelledby": `dify-${p.name}`, dataset: { plugin: p.name } },
    h("h3", { id: `dify-${p.name}` }, p.label && p.label !== p.name ? `${p.label} (${p.name})` : p.name, " ",
      h("span", { class: "badge" }, p.origin), " ", h("span", { class: "badge" }, p.version), " ",
      signatureBadge(p.signature === "signed")),
    h("dl", { class: "kv" },
      h("dt", {}, "Identity"), h("dd", {}, h("code", {}, p.identity)),
      h("dt", {}, "Signature"), h("dd", {}, signatureText(p.signature === "signed", p.signer)),
      h("dt", {}, "Permissions"), h("dd", {}, p.permissions.length ? p.permissions.join(", ") : "none declared"),
      h("dt", {}, "Endpoints"), h("dd", {}, p.endpoints.map((e) => `${e.method || ""} ${e.path || ""}`.trim()).join("; ") || "none"),
      p.unserved.length ? [h("dt", {}, "Not served"), h("dd", {}, p.unserved.join(", "))] : null,
      p.runtime_state ? [h("dt", {}, "Runtime"), h("dd", {}, p.runtime_state)] : null,
      h("dt", {}, "Installed"), h("dd", {}, formatTime(p.installed_at)),
      p.updated_at !== p.installed_at ? [h("dt", {}, "Upgraded"), h("dd", {}, formatTime(p.updated_at))] : null),
    h("details", { dataset: { operator: "" } }, h("summary", {}, `Upgrade ${p.name}`),
      packageChooser({ title: `A newer package of ${p.name}`, label: `New package of ${p.name} (.difypkg)`, verb: "Upgrade", expect: p.name,
        submit: async (file, allowUnsigned) => {
          const done = await api.upload("PUT", `${pluginPath(p.name)}${allowUnsigned ? "?allow_unsigned=true" : ""}`, file);
          await refresh();
          return done;
        } })),
    slot, h("div", { class: "actions" }, removeButton));
}

function ownCard(p) {
  return h("article", { class: "card", "aria-labelledby": `plugin-${p.name}` },
    h("h3", { id: `plugin-${p.name}` }, p.name, " ", h("span", { class: "badge" }, p.origin || "built-in"),
      p.version ? [" ", h("span", { class: "badge" }, p.version)] : null),
    h("p", {}, p.description),
    h("dl", { class: "kv" },
      h("dt", {}, "Signature"), h("dd", {}, p.origin === "entry point"
        ? "Not a signed package: an installed Python distribution" : "Part of the gateway (shipped with it, no separate signature)"),
      h("dt", {}, "Permissions"), h("dd", {}, p.permissions.length ? p.permissions.join(", ") : "none"),
      h("dt", {}, "Routes"), h("dd", {}, p.routes.map((r) => `${r.methods.join("/")} ${r.path}`).join("; ") || "—"),
      h("dt", {}, "Actions"), h("dd", {}, p.actions.map((a) => a.name).join(", ") || "none"),
      h("dt", {}, "Secret settings"), h("dd", {}, p.secret_settings.join(", ") || "none")));
}

export async function pluginsView() {
  const element = h("section", {});
  const dify = h("div", {});
  const own = h("div", {});
  async function refresh() {
    const listing = await api.get("/plugins");
    fill(dify, listing.dify_plugins.length ? listing.dify_plugins.map((p) => difyCard(p, refresh))
      : h("p", { class: "muted" }, "No Dify plugin packages installed."));
    fill(own, listing.plugins.map(ownCard));
  }
  const installer = h("section", { class: "card", "aria-labelledby": "install-title", dataset: { operator: "" } },
    h("h2", { id: "install-title" }, "Install a Dify plugin package"),
    packageChooser({ title: null, label: "Package file (.difypkg)", verb: "Install", submit: async (file, allowUnsigned) => {
      const done = await api.upload("POST", `/plugins${allowUnsigned ? "?allow_unsigned=true" : ""}`, file);
      await refresh();
      return done;
    } }));
  fill(element, h("h1", {}, "Plugins"),
    h("p", { class: "muted" }, "What endpoints can speak. Each plugin's settings form comes from its own settings model."),
    isOperator() ? null : h("p", { class: "notice" }, "Installing, upgrading and removing plugins is the operator's (GATEWAY_ADMIN_TOKEN): plugins serve every workspace."),
    h("h2", {}, "Dify plugin packages"), dify, installer,
    h("h2", {}, "Gateway plugins"), own);
  await refresh();
  return { title: "Plugins", element };
}
