// Small DOM helpers: elements are built with properties, never from HTML strings.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let ids = 0;
export const uid = (prefix = "f") => `${prefix}-${++ids}`;

// A labelled control: label, the control, its help text and a place for its error.
export function field(labelText, control, help) {
  control.id = control.id || uid();
  const helpEl = help ? h("p", { class: "help", id: control.id + "-help" }, help) : null;
  if (helpEl) control.setAttribute("aria-describedby", helpEl.id);
  const errorEl = h("p", { class: "field-error", id: control.id + "-error", role: "alert" });
  return h("div", { class: "field", dataset: { field: control.name || "" } },
    h("label", { for: control.id }, labelText), control, helpEl, errorEl);
}

export function showFieldErrors(form, errors) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  const unplaced = [];
  for (const item of errors || []) {
    const name = String(item.field || "").replace(/^settings\./, "");
    const target = form.querySelector(`[data-field="${CSS.escape(name)}"] .field-error`);
    if (target) target.textContent = item.message;
    else unplaced.push(`${item.field}: ${item.message}`);
  }
  return unplaced;
}

export function formatTime(seconds) {
  if (!seconds) return "—";
  return new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  }).format(new Date(seconds * 1000));
}

export function formatClock(seconds) {
  return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    .format(new Date(seconds * 1000));
}

export function toast(message) {
  const box = document.getElementById("toast");
  const p = h("p", {}, message);
  box.append(p);
  setTimeout(() => p.remove(), 4000);
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { "aria-hidden": "true", class: "skip" });
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

export function copyButton(labelText, value) {
  return h("button", {
    type: "button", class: "quiet small", "aria-label": `Copy ${labelText}`,
    onclick: async () => {
      try { await copyText(value); toast(`${labelText} copied`); } catch { toast("Select the text and press Ctrl+C"); }
    },
  }, "Copy");
}

// A read-only value with a copy button (URLs, keys, snippets).
export function copyable(labelText, value, { secret = false } = {}) {
  const input = h("input", { type: "text", readOnly: true, value, spellcheck: false, autocomplete: "off" });
  input.dataset.copyValue = "";
  const button = copyButton(labelText, value);
  input.id = uid();
  return h("div", { class: "field" }, h("label", { for: input.id }, labelText),
    h("div", { class: secret ? "copy secret-value" : "copy" }, input, button));
}

// replaceChildren without the nulls a conditional part leaves (it would print "null").
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// A failed form submission: errors next to their fields, the rest (and the message) in `slot`.
export function showFormError(form, slot, error) {
  const rest = showFieldErrors(form, error.fields);
  fill(slot, errorBox(error), rest.length ? h("ul", { class: "field-error" }, rest.map((r) => h("li", {}, r))) : null);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error));
}

// A button that runs `action`, disabled while it runs; failures land in `errorSlot`. It changes
// something (`data-write`: hidden from a viewer's session) unless `write: false`.
export function actionButton(text, action, { cls = "", errorSlot = null, label = null, write = true } = {}) {
  const button = h("button", { type: "button", class: cls, "aria-label": label || undefined }, text);
  if (write) button.dataset.write = "";
  button.addEventListener("click", async () => {
    button.disabled = true;
    if (errorSlot) errorSlot.replaceChildren();
    try { await action(button); } catch (error) {
      if (errorSlot) errorSlot.replaceChildren(errorBox(error)); else toast(error.message);
    } finally { button.disabled = false; }
  });
  return button;
}

// A modal confirmation (native <dialog>: focus is trapped and Escape cancels).
export function confirmDialog(title, text, confirmText) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title), h("p", {}, text));
    const no = h("button", { type: "button", class: "quiet", onclick: () => dialog.close("no") }, "Cancel");
    const yes = h("button", { type: "button", class: "danger", onclick: () => dialog.close("yes") }, confirmText);
    dialog.append(h("div", { class: "actions" }, no, yes));
    dialog.addEventListener("close", () => { resolve(dialog.returnValue === "yes"); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename, class: "skip" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function statusBadge(status) {
  const cls = status >= 500 ? "bad" : status >= 400 ? "warn" : "ok";
  return h("span", { class: `badge ${cls}` }, String(status));
}

// A table that folds into label/value rows on narrow screens.
export function table(headers, rows, { caption } = {}) {
  return h("div", { class: "table-wrap" }, h("table", { class: "responsive" },
    caption ? h("caption", { class: "skip" }, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

export function cells(headers, values) {
  return values.map((value, i) => h("td", { dataset: { label: headers[i] } }, value));
}
