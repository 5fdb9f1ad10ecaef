import { api } from "../api.js";
import { actionButton, cells, field, formatTime, h, table, toast } from "../dom.js";

const STATES = [["dead", "Dead letters"], ["queued", "Queued"], ["running", "Running"], ["done", "Done"], ["", "All"]];
const HEADERS = ["Job", "Kind", "State", "Attempts", "Last error", "Next attempt", "Target", ""];

export async function jobsView() {
  const state = h("select", { name: "state" }, STATES.map(([v, t]) => h("option", { value: v }, t)));
  const list = h("div", {});
  const slot = h("div", {});

  async function refresh() {
    const query = state.value ? `?state=${state.value}` : "";
    const { jobs } = await api.get(`/jobs${query}`);
    if (!jobs.length) { list.replaceChildren(h("p", { class: "muted" }, "No jobs in this state.")); return; }
    list.replaceChildren(table(HEADERS, jobs.map((j) => h("tr", { dataset: { jobId: j.id } }, cells(HEADERS, [
      h("code", {}, j.id), j.handler ? `${j.kind}: ${j.handler}` : j.kind,
      h("span", { class: `badge ${j.state === "dead" ? "bad" : j.state === "done" ? "ok" : "warn"}` }, j.state),
      `${j.attempts} of ${j.max_attempts}`,
      j.last_error ? h("span", { class: "mono" }, j.last_error) : "—",
      j.state === "queued" ? formatTime(j.due_at) : "—",
      j.callback_target ? h("code", {}, j.callback_target) : (j.endpoint_id ? h("a", { href: `#/endpoints/${encodeURIComponent(j.endpoint_id)}` }, "endpoint") : "—"),
      j.state === "dead" ? actionButton("Replay", async () => {
        const replayed = await api.post(`/jobs/${encodeURIComponent(j.id)}/replay`);
        toast(`Job ${replayed.id} replayed: ${replayed.state}`);
        await refresh();
      }, { cls: "small", errorSlot: slot, label: `Replay job ${j.id}` }) : "",
    ]))), { caption: "Jobs" }));
  }
  state.addEventListener("change", () => refresh().catch((e) => slot.replaceChildren(h("p", { class: "error" }, e.message))));
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 5000);
  const element = h("section", {}, h("h1", {}, "Jobs"),
    h("p", { class: "muted" }, "Answers, deliveries and callbacks run as jobs. Payloads are never shown; a dead job can be replayed."),
    h("div", { class: "card" }, h("div", { class: "row" }, field("Show", state)), slot, list));
  return { title: "Jobs", element, stop: () => clearInterval(timer) };
}
