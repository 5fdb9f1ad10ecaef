// The console's entry: log in, then a hash router over the screens.
import { api, currentWorkspace, login, logout, resumeSession, setWorkspace } from "./api.js";
import { errorBox, field, h } from "./dom.js";
import { canWrite, isOperator, setWho, whoIsIn } from "./state.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logoutButton = document.getElementById("logout");
const whoBox = document.getElementById("who");
const WORKSPACE_KEY = "gw-console-workspace";  // the operator's pick, per browser tab
let stopCurrent = null;  // a screen that polls returns a function that stops it

// Each screen's module is fetched when it is first shown: the login page loads only what it needs.
const screen = (module, name) => async (...args) => (await import(`./views/${module}.js`))[name](...args);
const overviewView = screen("overview", "overviewView");
const endpointsView = screen("endpoints", "endpointsView");
const workspacesView = screen("workspaces", "workspacesView");

const ROUTES = [
  [/^#\/overview$/, () => overviewView()],
  [/^#\/apps$/, screen("apps", "appsView")],
  [/^#\/endpoints$/, () => endpointsView()],
  [/^#\/endpoints\/new$/, () => endpointsView({ create: true })],
  [/^#\/endpoints\/([^/]+)$/, (m) => screen("endpoint", "endpointView")(decodeURIComponent(m[1]))],
  [/^#\/endpoints\/([^/]+)\/traffic$/, (m) => screen("traffic", "trafficView")(decodeURIComponent(m[1]))],
  [/^#\/jobs$/, screen("jobs", "jobsView")],
  [/^#\/plugins$/, screen("plugins", "pluginsView")],
  [/^#\/workspaces$/, () => (isOperator() ? workspacesView() : notForTokens())],
];

function notForTokens() {
  return { title: "Workspaces", element: h("section", {}, h("h1", {}, "Workspaces"),
    h("p", { class: "notice" }, "Workspaces and their tokens are managed with the operator's token (GATEWAY_ADMIN_TOKEN).")) };
}

// A viewer's every screen says once, at the top, why nothing can be changed.
function readOnlyNote() {
  if (canWrite()) return null;
  const who = whoIsIn();
  return h("p", { class: "notice read-only-note", role: "note" },
    `Read-only: you are logged in with a viewer token of workspace ${who.workspace}. `,
    "Changing anything needs an admin token of the workspace, or the operator's token.");
}

async function show() {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  const hash = location.hash || "#/overview";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) { location.hash = "#/overview"; return; }
  const section = "#/" + hash.split("/")[1];
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === section) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const screen = await route[1](hash.match(route[0]));
    main.replaceChildren(...[readOnlyNote(), screen.element].filter(Boolean));
    stopCurrent = screen.stop || null;
    document.title = `${screen.title} · dify-gateway console`;
    const heading = main.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (error) {
    if (error.status === 401) return;  // the session ended: the login screen is up (session-ended)
    main.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(error));
  }
}

function loginScreen(message) {
  nav.hidden = true;
  logoutButton.hidden = true;
  whoBox.hidden = true;
  whoBox.replaceChildren();
  setWho(null);
  setWorkspace(null);
  document.body.classList.remove("read-only", "not-operator");
  const token = h("input", { type: "password", name: "token", autocomplete: "current-password", required: true });
  const slot = h("div", {}, message ? h("p", { class: "notice", role: "status" }, message) : null);
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in"),
    h("p", { class: "muted" }, "Use the gateway's admin token (GATEWAY_ADMIN_TOKEN, or the token printed at the first start), ",
      "or a workspace token (gwt_…) the operator gave you: it shows that workspace only."),
    field("Admin token or workspace token", token), slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    slot.replaceChildren();
    try {
      const who = await login(token.value);
      token.value = "";
      start(who);
    } catch (error) {
      slot.replaceChildren(errorBox(error));
      token.select();
    } finally { button.disabled = false; }
  });
  main.replaceChildren(form);
  document.title = "Log in · dify-gateway console";
  token.focus();
}

// The header says who is logged in; the operator also picks the workspace every screen shows.
async function drawWho() {
  const who = whoIsIn();
  if (!who.operator) {
    whoBox.replaceChildren(h("span", { class: "badge" }, who.role), " ",
      h("span", { "aria-label": `workspace ${who.workspace}, token ${who.token_id}` }, who.workspace));
    return;
  }
  const select = h("select", { id: "workspace-switch", name: "workspace" });
  let names = [currentWorkspace() || "default"];
  try {
    names = (await api.get("/workspaces", { scoped: false })).workspaces.map((w) => w.name);
  } catch { /* the list stays the current one; the screens say what is wrong */ }
  if (!names.includes(currentWorkspace() || "default")) pickWorkspace(null);
  select.append(...names.map((n) => h("option", { value: n }, n)));
  select.value = currentWorkspace() || "default";
  select.addEventListener("change", () => { pickWorkspace(select.value); show(); });
  whoBox.replaceChildren(h("span", { class: "badge" }, "operator"), " ",
    h("label", { for: select.id, class: "inline" }, "Workspace"), select);
}

function pickWorkspace(name) {
  const chosen = name && name !== "default" ? name : null;
  setWorkspace(chosen);
  if (chosen) sessionStorage.setItem(WORKSPACE_KEY, chosen); else sessionStorage.removeItem(WORKSPACE_KEY);
}

async function start(who) {
  setWho(who);
  document.body.classList.toggle("read-only", who.role === "viewer");
  document.body.classList.toggle("not-operator", !who.operator);
  if (who.operator) setWorkspace(sessionStorage.getItem(WORKSPACE_KEY));
  nav.hidden = false;
  logoutButton.hidden = false;
  whoBox.hidden = false;
  await drawWho();
  show();
}

document.addEventListener("workspaces-changed", () => { if (isOperator()) drawWho(); });
document.addEventListener("workspace-picked", (event) => {
  pickWorkspace(event.detail);
  drawWho();
  if (location.hash === "#/overview") show(); else location.hash = "#/overview";
});

logoutButton.addEventListener("click", async () => {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  try { await logout(); } finally { loginScreen("You are logged out."); }
});
document.addEventListener("session-ended", () => {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  loginScreen("Your session has ended. Log in again.");
});
window.addEventListener("hashchange", () => { if (!nav.hidden) show(); });
// In-page links (#main, #edit-settings) move the focus there; only "#/…" links are screens.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#"]:not([href^="#/"])');
  if (!link) return;
  const target = document.getElementById(link.getAttribute("href").slice(1));
  if (!target) return;
  event.preventDefault();
  if (!target.hasAttribute("tabindex")) target.tabIndex = -1;
  target.focus();
  target.scrollIntoView({ block: "start" });
});

resumeSession().then((who) => (who ? start(who) : loginScreen()), (error) => {
  main.replaceChildren(h("h1", {}, "The console can't reach the gateway"), errorBox(error));
});
