import { api } from "../api.js";
import { h } from "../dom.js";

export async function pluginsView() {
  const { plugins } = await api.get("/plugins");
  const element = h("section", {}, h("h1", {}, "Plugins"),
    h("p", { class: "muted" }, "What endpoints can speak. Each plugin's settings form comes from its own settings model."),
    plugins.map((p) => h("article", { class: "card", "aria-labelledby": `plugin-${p.name}` },
      h("h2", { id: `plugin-${p.name}` }, p.name, " ",
        p.origin ? h("span", { class: "badge" }, p.origin) : h("span", { class: "badge" }, "built in"),
        p.version ? h("span", { class: "badge" }, p.version) : null),
      h("p", {}, p.description),
      h("dl", { class: "kv" },
        h("dt", {}, "Permissions"), h("dd", {}, p.permissions.length ? p.permissions.join(", ") : "none"),
        h("dt", {}, "Routes"), h("dd", {}, p.routes.map((r) => `${r.methods.join("/")} ${r.path}`).join("; ") || "—"),
        h("dt", {}, "Actions"), h("dd", {}, p.actions.map((a) => a.name).join(", ") || "none"),
        h("dt", {}, "Secret settings"), h("dd", {}, p.secret_settings.join(", ") || "none")))));
  return { title: "Plugins", element };
}
