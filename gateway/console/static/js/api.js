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

export async function request(method, path, body, { base = "/admin/api" } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  let response;
  try {
    response = await fetch(base + path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
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
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body === undefined ? {} : body),
  patch: (path, body) => request("PATCH", path, body),
  del: (path) => request("DELETE", path),
};

// -- the console's own session ----------------------------------------------------------------
const consoleBase = { base: "." };

export async function resumeSession() {
  try {
    const session = await request("GET", "/session", undefined, consoleBase);
    csrf = session.csrf_token;
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

export async function login(token) {
  const session = await request("POST", "/login", { token }, consoleBase);
  csrf = session.csrf_token;
}

export async function logout() {
  try { await request("POST", "/logout", {}, consoleBase); } finally { csrf = null; }
}
