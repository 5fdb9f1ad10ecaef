// The admin JSON API, called with the session cookie and the session's CSRF token.
let csrf = null;

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
  }
}

// What to tell a person for each failure: the API's own message says what was wrong.
function explain(status, body) {
  const error = body && body.error;
  if (error && error.message) return [error.code, error.message, error.errors];
  if (status === 0) return ["network", "The gateway did not answer. Is it running? Try again in a moment."];
  return ["http_" + status, `The gateway answered HTTP ${status}. Try again, or check its log.`];
}

// The workspace the operator looks at (the admin API's ?workspace=); null: the default one. A
// workspace token's session acts on its own workspace whatever this says, so it stays null there.
let workspace = null;

export function setWorkspace(name) { workspace = name || null; }
export function currentWorkspace() { return workspace; }

function scopedPath(path) {
  if (!workspace) return path;
  return `${path}${path.includes("?") ? "&" : "?"}workspace=${encodeURIComponent(workspace)}`;
}

// `raw`: the body is a file sent as it is (a plugin package); `scoped: false`: no ?workspace= (the
// operator's own routes, where that parameter means something else or nothing).
export async function request(method, path, body, { base = "/admin/api", raw = false, scoped = true } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = raw ? "application/octet-stream" : "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  const url = base + (base === "/admin/api" && scoped ? scopedPath(path) : path);
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    const [code, message] = explain(0, null);
    throw new ApiError(0, code, message);
  }
  let data = null;
  const text = await response.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const [code, message, fields] = explain(response.status, data);
    const error = new ApiError(response.status, code, message, fields);
    if (response.status === 401 && base === "/admin/api") document.dispatchEvent(new CustomEvent("session-ended"));
    throw error;
  }
  return data;
}

export const api = {
  get: (path, options) => request("GET", path, undefined, options),
  post: (path, body, options) => request("POST", path, body === undefined ? {} : body, options),
  patch: (path, body) => request("PATCH", path, body),
  put: (path, body) => request("PUT", path, body),
  del: (path, options) => request("DELETE", path, undefined, options),
  // A file as the request body (a .difypkg): POST /plugins, PUT /plugins/{author}/{name}, verify.
  upload: (method, path, file) => request(method, path, file, { raw: true, scoped: false }),
};

// Every plugin an endpoint can be made with: the gateway's own, then the Dify packages the runtime
// has loaded (each with its settings model, like any plugin).
export async function endpointPlugins() {
  const { plugins, dify_plugins: dify = [] } = await api.get("/plugins");
  const packages = dify.filter((d) => d.endpoint_plugin)
    .map((d) => ({ ...d.endpoint_plugin, description: d.endpoint_plugin.description || `${d.label} (Dify plugin ${d.version})` }));
  return [...plugins, ...packages];
}

// -- the console's own session ----------------------------------------------------------------
const consoleBase = { base: "." };

// Both answer who is logged in: { role, workspace, token_id, operator } (null: no session).
export async function resumeSession() {
  try {
    const session = await request("GET", "/session", undefined, consoleBase);
    csrf = session.csrf_token;
    return session.who;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export async function login(token) {
  const session = await request("POST", "/login", { token }, consoleBase);
  csrf = session.csrf_token;
  return session.who;
}

export async function logout() {
  try { await request("POST", "/logout", {}, consoleBase); } finally { csrf = null; workspace = null; }
}
