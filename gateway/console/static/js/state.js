// What one screen hands the next, in memory only: the secrets of an endpoint just created (shown
// once), and who is logged in.
let created = null;

export function rememberCreated(result) { created = result; }

export function takeCreated(id) {
  if (!created || created.id !== id) return null;
  const result = created;
  created = null;
  return result;
}

// Who is logged in ({ role, workspace, token_id, operator }), set at login: screens hide what the
// session may not do (the admin API refuses it anyway).
let who = null;

export function setWho(value) { who = value; }
export function whoIsIn() { return who; }
export const canWrite = () => Boolean(who && who.role !== "viewer");
export const isOperator = () => Boolean(who && who.operator);
