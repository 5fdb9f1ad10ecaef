import { api } from "../api.js";
import { cells, field, formatClock, formatTime, h, statusBadge, table } from "../dom.js";

const HEADERS = ["Time", "Method", "Path", "Status", "Latency", "Verification", "Client IP"];
const FILTERS = [["all", "All statuses"], ["2", "2xx: answered"], ["4", "4xx: refused"], ["5", "5xx: failed"]];
const POLL_MS = 2000;

function matches(filter, status) {
  return filter === "all" || String(status).startsWith(filter);
}

function detail(entry, logBodies) {
  return h("section", { class: "card", "aria-labelledby": "request-detail", tabIndex: -1, id: "detail" },
    h("h2", { id: "request-detail" }, `Request ${entry.request_id}`),
    h("dl", { class: "kv" },
      h("dt", {}, "Time"), h("dd", {}, formatTime(entry.time)),
      h("dt", {}, "Method"), h("dd", {}, entry.method),
      h("dt", {}, "Path"), h("dd", {}, h("code", {}, entry.path)),
      h("dt", {}, "Status"), h("dd", {}, statusBadge(entry.status)),
      h("dt", {}, "Latency"), h("dd", {}, `${entry.latency_ms.toFixed(1)} ms`),
      h("dt", {}, "Verification"), h("dd", {}, entry.verdict),
      h("dt", {}, "Client IP"), h("dd", {}, entry.client_ip || "—"),
      h("dt", {}, "Request id"), h("dd", {}, h("code", {}, entry.request_id))),
    h("h3", {}, "Body"),
    entry.body !== null && entry.body !== undefined ? h("pre", { class: "wrap" }, entry.body)
      : h("p", { class: "muted" }, logBodies ? "No body." : "Body logging is off for this endpoint (turn it on in its settings)."));
}

export async function trafficView(id) {
  const path = `/endpoints/${encodeURIComponent(id)}`;
  const endpoint = await api.get(path);
  const filter = h("select", { name: "status" }, FILTERS.map(([v, t]) => h("option", { value: v }, t)));
  const live = h("input", { type: "checkbox", name: "live", checked: true });
  const status = h("p", { class: "help", role: "status" });
  const list = h("div", {});
  const detailSlot = h("div", {});
  let entries = [];
  let selected = null;

  function draw() {
    const shown = entries.filter((e) => matches(filter.value, e.status));
    if (!shown.length) {
      list.replaceChildren(h("p", { class: "muted" }, entries.length ? "No requests with this status." : "No requests yet. Send one to the URL."));
      return;
    }
    list.replaceChildren(table(HEADERS, shown.map((e) => {
      const open = () => {
        selected = e.request_id;
        detailSlot.replaceChildren(detail(e, endpoint.log_bodies));
        detailSlot.querySelector("section").focus();
        draw();
      };
      const button = h("button", { type: "button", class: "quiet small", onclick: open, "aria-label": `Details of ${e.method} ${e.path} at ${formatClock(e.time)}` }, formatClock(e.time));
      return h("tr", { class: `clickable${selected === e.request_id ? " selected" : ""}`, dataset: { requestId: e.request_id } },
        cells(HEADERS, [button, e.method, h("code", {}, e.path), statusBadge(e.status), `${e.latency_ms.toFixed(0)} ms`,
          e.verdict, e.client_ip || "—"]));
    }), { caption: "Requests, newest first" }));
  }

  async function poll() {
    const { requests } = await api.get(`${path}/requests?limit=200`);
    entries = requests;
    status.textContent = `${requests.length} requests · updated ${formatClock(Date.now() / 1000)}`;
    draw();
  }
  filter.addEventListener("change", draw);
  await poll();
  let timer = setInterval(() => { if (live.checked) poll().catch((e) => { status.textContent = e.message; }); }, POLL_MS);

  const element = h("section", {},
    h("h1", {}, `Live traffic: ${endpoint.name || endpoint.id}`),
    h("p", {}, h("a", { href: `#${path}` }, "← Endpoint"), " · ", endpoint.plugin),
    h("div", { class: "card" },
      h("div", { class: "row" }, field("Show", filter),
        h("label", { class: "inline" }, live, "Update live (every 2 s)")),
      status, list),
    detailSlot);
  return { title: "Live traffic", element, stop: () => clearInterval(timer) };
}
