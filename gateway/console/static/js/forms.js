// A plugin's settings form, rendered from the JSON schema of its pydantic settings model, so every
// plugin (built in, installed, or a Dify package) gets its form without console code of its own.
import { field, h } from "./dom.js";

function resolve(schema, root) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { ...((root.$defs || {})[name] || {}), ...schema, $ref: undefined };
  }
  return schema || {};
}

// The field's main type, ignoring `null` in `anyOf` (an optional setting).
function shape(schema, root) {
  schema = resolve(schema, root);
  const options = (schema.anyOf || schema.oneOf || []).map((s) => resolve(s, root));
  const concrete = options.filter((s) => s.type !== "null");
  const base = concrete.length === 1 ? { ...concrete[0], ...schema, anyOf: undefined } : schema;
  return { ...base, nullable: options.some((s) => s.type === "null") };
}

function kind(s) {
  if (s.enum) return "enum";
  if (s.type === "boolean") return "boolean";
  if (s.type === "integer" || s.type === "number") return "number";
  if (s.type === "string") return s.format === "password" || s.writeOnly ? "secret" : "string";
  if (s.type === "array" && resolve(s.items || {}, {}).type === "string") return "list";
  return "json";
}

function title(name, s) {
  return s.title || name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function describe(s, defaultValue, isSecret, editing, isSet) {
  const parts = [];
  if (s.description) parts.push(/[.!?]$/.test(s.description) ? s.description : s.description + ".");
  const k = kind(s);
  if (k === "list") parts.push("Comma-separated.");
  if (k === "json") parts.push("JSON.");
  if (s.minimum !== undefined || s.exclusiveMinimum !== undefined || s.maximum !== undefined) {
    const lo = s.minimum ?? s.exclusiveMinimum, hi = s.maximum ?? s.exclusiveMaximum;
    parts.push(`Between ${lo ?? "−∞"} and ${hi ?? "∞"}.`);
  }
  if (isSecret && editing) parts.push(isSet ? "Set; leave empty to keep it." : "Not set yet.");
  else if (defaultValue !== undefined && defaultValue !== null && !isSecret) {
    parts.push(`Default: ${Array.isArray(defaultValue) ? defaultValue.join(", ") : JSON.stringify(defaultValue)}.`);
  }
  return parts.join(" ");
}

/**
 * Build the form. `current` holds the endpoint's (masked) settings when editing.
 * Returns { element, read() }: read() gives { settings, unset } with only what the person set.
 */
export function settingsForm(plugin, { current = null } = {}) {
  const root = plugin.settings_schema || {};
  const required = new Set(root.required || []);
  const secrets = new Set(plugin.secret_settings || []);
  const generated = new Set(plugin.generated_settings || []);
  const editing = current !== null;
  const controls = [];
  const fields = [], more = [];
  for (const [name, raw] of Object.entries(root.properties || {})) {
    const s = shape(raw, root);
    const k = secrets.has(name) ? "secret" : kind(s);
    const now = editing ? current[name] : undefined;
    const isSet = editing && now !== undefined && now !== null;
    let control;
    if (k === "boolean") {
      control = h("select", { name },
        h("option", { value: "" }, `Default (${s.default ? "yes" : "no"})`),
        h("option", { value: "true" }, "Yes"), h("option", { value: "false" }, "No"));
      if (editing && typeof now === "boolean") control.value = String(now);
    } else if (k === "enum") {
      control = h("select", { name }, h("option", { value: "" }, s.default !== undefined ? `Default (${s.default})` : "—"),
        s.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      if (editing && now !== undefined) control.value = JSON.stringify(now);
    } else if (k === "json") {
      control = h("textarea", { name, spellcheck: false, rows: 4 });
      if (editing && now !== undefined && now !== null) control.value = JSON.stringify(now, null, 2);
    } else {
      control = h("input", {
        name, spellcheck: false,
        type: k === "secret" ? "password" : k === "number" ? "number" : "text",
        autocomplete: k === "secret" ? "new-password" : "off",
      });
      if (k === "number") control.step = s.type === "integer" ? "1" : "any";
      if (k !== "secret") {
        if (s.default !== undefined && s.default !== null) control.placeholder = k === "list" ? s.default.join(", ") : String(s.default);
        if (editing && now !== undefined && now !== null) control.value = k === "list" ? now.join(", ") : String(now);
      } else if (isSet) control.placeholder = "•••••• (set)";
    }
    const needed = required.has(name) && !generated.has(name);
    if (needed && !editing) control.required = true;
    const note = generated.has(name) && !editing ? " (made for you when left empty)" : needed ? " (required)" : "";
    const item = field(title(name, s) + note, control, describe(s, s.default, k === "secret", editing, isSet));
    // What a person must decide comes first; settings with a default wait behind "More settings".
    (required.has(name) || k === "secret" || generated.has(name) ? fields : more).push(item);
    controls.push({ name, k, control, s, original: editing ? control.value : "" });
  }
  const element = h("fieldset", { class: "settings" }, h("legend", {}, `${plugin.name} settings`),
    fields.length || more.length ? fields : h("p", { class: "muted" }, "This plugin has no settings."),
    more.length ? h("details", {}, h("summary", {}, `More settings (${more.length}, each with a default)`), more) : null);

  function read() {
    const settings = {}, unset = [], problems = [];
    for (const { name, k, control, s, original } of controls) {
      const text = control.value.trim();
      if (editing && control.value === original) continue;  // unchanged
      if (text === "") {
        if (editing && k !== "secret" && s.nullable) unset.push(name);
        continue;
      }
      try {
        if (k === "boolean") settings[name] = text === "true";
        else if (k === "enum") settings[name] = JSON.parse(text);
        else if (k === "number") settings[name] = Number(text);
        else if (k === "list") settings[name] = text.split(",").map((p) => p.trim()).filter(Boolean);
        else if (k === "json") settings[name] = JSON.parse(text);
        else settings[name] = control.value;
      } catch {
        problems.push({ field: name, message: "is not valid JSON; check the brackets and quotes" });
      }
    }
    return { settings, unset, problems };
  }
  return { element, read };
}
