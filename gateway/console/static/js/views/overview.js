import { api } from "../api.js";
import { trafficChart } from "../charts.js";
import { errorBox, fill, h } from "../dom.js";
import { budgetForm, usageCards, usageData } from "./usage.js";

function stat(label, value, note, cls = "") {
  return h("div", { class: "card" }, h("h2", {}, label), h("p", { class: `stat ${cls}` }, value, " ", h("small", {}, note)));
}

export async function overviewView() {
  const element = h("section", {}, h("h1", {}, "Overview"));
  const body = h("div", {});
  element.append(body, budgetForm(draw));
  let latest = null;
  let usage = null;  // null: not read (yet); { error } when the usage API failed
  const budgetSlot = h("div", {});
  async function draw() {
    const [o, u] = await Promise.all([api.get("/overview"), usageData().catch((error) => ({ error }))]);
    latest = o;
    usage = u;
    render(o);
  }
  function render(o) {
    const last = o.requests[o.requests.length - 1] || 0;
    const lastErrors = o.errors[o.errors.length - 1] || 0;
    fill(body,
      h("div", { class: "grid" },
        stat("Health", o.store_ok ? "OK" : "Store down", o.store_ok ? "store reachable" : "check GATEWAY_STORE",
          o.store_ok ? "ok" : "bad"),
        stat("Requests", String(last), `this minute (${lastErrors} ${lastErrors === 1 ? "error" : "errors"})`, lastErrors ? "warn" : ""),
        stat("Answers in flight", String(o.answers.running), `of ${o.answers.limit}, ${o.answers.waiting} waiting`),
        stat("Jobs waiting", String(o.jobs.queued),
          `${o.jobs.running} running, ${o.jobs.dead} dead`, o.jobs.dead ? "warn" : "")),
      h("div", { class: "card" }, h("h2", {}, "Requests and errors per minute"),
        trafficChart(o.minutes, o.requests, o.errors, "Requests and errors per minute"),
        h("div", { class: "legend" }, h("span", { class: "k1" }, "requests"), h("span", { class: "k2" }, "errors (HTTP 400 and up)")),
        h("p", { class: "help" }, "From each endpoint's request log (its last requests), in your time zone.")),
      o.jobs.dead ? h("p", { class: "notice" }, `${o.jobs.dead} dead ${o.jobs.dead === 1 ? "job" : "jobs"}: `, h("a", { href: "#/jobs" }, "look at them and replay")) : null,
      usage && usage.error ? h("section", { class: "card" }, h("h2", {}, "Usage and cost"), errorBox(usage.error))
        : usage ? usageCards(usage, draw, budgetSlot) : null,
    );
  }
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 10000);
  const resized = () => { if (latest) render(latest); };
  window.addEventListener("resize", resized);
  const stop = () => { clearInterval(timer); window.removeEventListener("resize", resized); };
  return { title: "Overview", element, stop };
}
