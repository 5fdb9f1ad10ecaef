// The console's entry: log in, then a hash router over the screens.
import { login, logout, resumeSession } from "./api.js";
import { errorBox, field, h } from "./dom.js";
import { appsView } from "./views/apps.js";
import { endpointView } from "./views/endpoint.js";
import { endpointsView } from "./views/endpoints.js";
import { jobsView } from "./views/jobs.js";
import { overviewView } from "./views/overview.js";
import { pluginsView } from "./views/plugins.js";
import { trafficView } from "./views/traffic.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logoutButton = document.getElementById("logout");
let stopCurrent = null;  // a screen that polls returns a function that stops it

const ROUTES = [
  [/^#\/overview$/, () => overviewView()],
  [/^#\/apps$/, () => appsView()],
  [/^#\/endpoints$/, () => endpointsView()],
  [/^#\/endpoints\/new$/, () => endpointsView({ create: true })],
  [/^#\/endpoints\/([^/]+)$/, (m) => endpointView(decodeURIComponent(m[1]))],
  [/^#\/endpoints\/([^/]+)\/traffic$/, (m) => trafficView(decodeURIComponent(m[1]))],
  [/^#\/jobs$/, () => jobsView()],
  [/^#\/plugins$/, () => pluginsView()],
];

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
    main.replaceChildren(screen.element);
    stopCurrent = screen.stop || null;
    document.title = `${screen.title} · dify-gateway console`;
    const heading = main.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (error) {
    main.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(error));
  }
}

function loginScreen(message) {
  nav.hidden = true;
  logoutButton.hidden = true;
  const token = h("input", { type: "password", name: "token", autocomplete: "current-password", required: true });
  const slot = h("div", {}, message ? h("p", { class: "notice", role: "status" }, message) : null);
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in"),
    h("p", { class: "muted" }, "Use the gateway's admin token: GATEWAY_ADMIN_TOKEN, or the token printed at the first start."),
    field("Admin token", token), slot, h("div", { class: "actions" }, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    slot.replaceChildren();
    try {
      await login(token.value);
      token.value = "";
      start();
    } catch (error) {
      slot.replaceChildren(errorBox(error));
      token.select();
    } finally { button.disabled = false; }
  });
  main.replaceChildren(form);
  document.title = "Log in · dify-gateway console";
  token.focus();
}

function start() {
  nav.hidden = false;
  logoutButton.hidden = false;
  show();
}

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

resumeSession().then((live) => (live ? start() : loginScreen()), (error) => {
  main.replaceChildren(h("h1", {}, "The console can't reach the gateway"), errorBox(error));
});
