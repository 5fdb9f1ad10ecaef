// What one screen hands the next in memory only: the secrets of an endpoint just created, shown once.
let created = null;

export function rememberCreated(result) { created = result; }

export function takeCreated(id) {
  if (!created || created.id !== id) return null;
  const result = created;
  created = null;
  return result;
}
