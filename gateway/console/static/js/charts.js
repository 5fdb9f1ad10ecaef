// Small SVG charts: presentation attributes and classes only (no inline styles, CSP forbids them).
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Requests per minute as a line, errors as bars, with a text summary for screen readers.
export function trafficChart(minutes, requests, errors, title) {
  // Drawn for the screen it is on, so its labels stay readable on a phone (redrawn with the data).
  const W = Math.round(Math.min(900, Math.max(300, window.innerWidth - 64))), H = 180, L = 34, B = 22, T = 10, R = 8;
  const max = Math.max(1, ...requests, ...errors);
  const x = (i) => L + (i * (W - L - R)) / Math.max(1, minutes.length - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const total = requests.reduce((a, b) => a + b, 0), failed = errors.reduce((a, b) => a + b, 0);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${total} requests, ${failed} errors in the last ${minutes.length} minutes` });
  root.append(svg("title", {}, title));
  for (const v of [0, Math.round(max / 2), max]) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
    root.append(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, String(v)));
  }
  const barW = Math.max(2, (W - L - R) / minutes.length - 3);
  errors.forEach((v, i) => {
    if (v > 0) root.append(svg("rect", { x: Math.min(Math.max(L, x(i) - barW / 2), W - R - barW), y: y(v), width: barW, height: H - B - y(v), class: "bar" }));
  });
  root.append(svg("polyline", { class: "line", points: requests.map((v, i) => `${x(i)},${y(v)}`).join(" ") }));
  const ticks = [[0, "start"], [Math.floor(minutes.length / 2), "middle"], [minutes.length - 1, "end"]];
  for (const [i, anchor] of ticks) {
    if (minutes[i] !== undefined) {
      const label = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }).format(new Date(minutes[i] * 1000));
      root.append(svg("text", { x: x(i), y: H - 6, "text-anchor": anchor }, label));
    }
  }
  return root;
}

export function sparkline(values, label) {
  const W = 120, H = 28, max = Math.max(1, ...values);
  const x = (i) => 1 + (i * (W - 2)) / Math.max(1, values.length - 1);
  const y = (v) => H - 2 - (H - 4) * (v / max);
  const total = values.reduce((a, b) => a + b, 0);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img",
    "aria-label": `${label}: ${total} requests in the last ${values.length} minutes` });
  root.append(svg("polyline", { class: "line", points: values.map((v, i) => `${x(i)},${y(v)}`).join(" ") }));
  return root;
}

// One horizontal bar per row ({ label, value, text }), longest first, for per-app and per-endpoint
// totals; `width` is the space it gets (half the page on a wide screen, all of it on a phone).
export function barChart(rows, title, width) {
  const shown = [...rows].sort((a, b) => b.value - a.value).slice(0, 12);
  const W = Math.round(Math.max(260, Math.min(900, width))), ROW = 26, T = 4, H = T + ROW * Math.max(1, shown.length);
  const longest = Math.max(0, ...shown.map((r) => r.text.length));
  const labelW = Math.min(130, Math.round(W * 0.3)), valueW = Math.min(Math.round(W * 0.45), longest * 6.2 + 10);
  const barMax = W - labelW - valueW - 12, max = Math.max(...shown.map((r) => r.value), 0) || 1;
  const summary = shown.map((r) => `${r.label}: ${r.text}`).join("; ");
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart bars", role: "img", "aria-label": `${title}. ${summary}` });
  root.append(svg("title", {}, title));
  const fit = (text, room) => (text.length * 6.2 > room ? text.slice(0, Math.max(3, Math.floor(room / 6.2) - 1)) + "…" : text);
  shown.forEach((r, i) => {
    const y = T + i * ROW;
    root.append(svg("text", { x: labelW - 6, y: y + 16, "text-anchor": "end" }, fit(r.label, labelW - 8)));
    root.append(svg("rect", { x: labelW, y: y + 5, width: Math.max(1, (barMax * r.value) / max), height: ROW - 10, class: "fill" }));
    root.append(svg("text", { x: labelW + Math.max(1, (barMax * r.value) / max) + 6, y: y + 16 }, r.text));
  });
  return root;
}
