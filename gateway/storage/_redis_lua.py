"""The Lua scripts of the Redis backend (`gateway.storage.redis`), one per atomic operation.

Job scripts get the key prefix as ARGV[1] and derive every key from it; the key-value scripts
take their key as KEYS[1].
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "CLAIM_MANY",
    "DELETE_IF_EQUALS",
    "ENQUEUE",
    "EXPIRE_IF_EQUALS",
    "INCR",
    "PURGE",
    "SET_FENCED",
    "TRANSITIONS",
    "UPDATE_META",
]

# Shared by the job scripts. ARGV[1] is always the key prefix.
_PRELUDE = """
local P = ARGV[1]
local TIME_SET = {queued = 'jobs:queued', running = 'jobs:leases', done = 'jobs:finished', dead = 'jobs:finished'}
local function jkey(id) return P .. 'job:' .. id end
local function state_of(id)
  local s = redis.call('HGET', jkey(id), 'state')
  if not s then return nil end
  return cjson.decode(s)
end
-- Queued and running jobs are indexed by kind too, so a claim can ask for one kind only.
local KIND_SET = {queued = ':queued', running = ':leases'}
-- `kind` (as given, not JSON) when the caller has it at hand, else read from the job.
local function kind_set(id, state, kind)
  if not KIND_SET[state] then return nil end
  if not kind then
    local stored = redis.call('HGET', jkey(id), 'kind')
    if not stored then return nil end
    kind = cjson.decode(stored)
  end
  return P .. 'jobs:kind:' .. kind .. KIND_SET[state]
end
local function unindex(id, state)
  redis.call('ZREM', P .. 'jobs:state:' .. state, id)
  redis.call('ZREM', P .. TIME_SET[state], id)
  local by_kind = kind_set(id, state)
  if by_kind then redis.call('ZREM', by_kind, id) end
end
-- `created` and `kind` when the caller has them at hand (a new job), else read from the job.
local function index(id, state, score, created, kind)
  redis.call('ZADD', P .. 'jobs:state:' .. state, created or redis.call('ZSCORE', P .. 'jobs:created', id), id)
  redis.call('ZADD', P .. TIME_SET[state], score, id)
  local by_kind = kind_set(id, state, kind)
  if by_kind then redis.call('ZADD', by_kind, score, id) end
end
-- Held by the owner (JSON) and, unless attempt is '', by that run of the job only.
local function held(id, owner, attempt)
  local f = redis.call('HMGET', jkey(id), 'state', 'lease_owner', 'attempts')
  if f[1] ~= '"running"' or f[2] ~= owner then return false end
  return attempt == '' or tonumber(f[3]) == tonumber(attempt)
end
"""

# A batch of enqueues in one call (group commit). ARGV: P, then per job: id, idempotency key or
# '', created_at, due_at, kind, and its hash fields and values (strings, as stored) in one JSON
# array: one argument per job rather than ~30, since the client encodes every argument in Python. One reply per job:
# {1} stored, {0, existing job's fields} (the key was taken, earlier in the batch too), {-1} id taken.
# Everything is checked before its write, so nothing fails halfway through a job.
ENQUEUE = (
    _PRELUDE
    + """
local replies = {}
local i = 2
-- Per job: id, key ('' for none), created, due, kind, then its hash fields and values as a JSON
-- array of strings (decoded as they are: no number in it, so nothing is rounded).
-- A new job is indexed from its arguments (`index` needn't read back its creation time and kind).
while i <= #ARGV do
  local id, key, created, due, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local fields = ARGV[i + 5]
  i = i + 6
  local existing = nil
  if key ~= '' then
    existing = redis.call('HGET', P .. 'jobs:keys', key)
    if existing and redis.call('EXISTS', jkey(existing)) == 0 then existing = nil end
  end
  if existing then
    replies[#replies + 1] = {0, redis.call('HGETALL', jkey(existing))}
  elseif redis.call('EXISTS', jkey(id)) == 1 then
    replies[#replies + 1] = {-1}
  else
    redis.call('HSET', jkey(id), unpack(cjson.decode(fields)))
    redis.call('ZADD', P .. 'jobs:created', created, id)
    index(id, 'queued', due, created, kind)
    if key ~= '' then redis.call('HSET', P .. 'jobs:keys', key, id) end
    replies[#replies + 1] = {1}
  end
end
return replies
"""
)

# Claiming, shared by CLAIM and CLAIM_MANY. ARGV: P, now, lease_until, owner JSON, lease_until JSON,
# now JSON, then the script's own. `take` claims one runnable job found in the indexes (or drops
# the index entries of a job that no longer exists: false).
_CLAIMING = (
    _PRELUDE
    + """
local function claim_sets(kind)
  if kind == '' then return P .. 'jobs:queued', P .. 'jobs:leases' end
  return P .. 'jobs:kind:' .. kind .. ':queued', P .. 'jobs:kind:' .. kind .. ':leases'
end
local function take(id, queued, leases)
  local current = state_of(id)
  if current == nil then
    redis.call('ZREM', P .. 'jobs:queued', id)
    redis.call('ZREM', P .. 'jobs:leases', id)
    redis.call('ZREM', queued, id)
    redis.call('ZREM', leases, id)
    return false
  end
  unindex(id, current)
  index(id, 'running', ARGV[3])
  redis.call('HSET', jkey(id), 'state', '"running"', 'lease_owner', ARGV[4], 'lease_until', ARGV[5],
             'updated_at', ARGV[6])
  redis.call('HINCRBY', jkey(id), 'attempts', 1)
  return redis.call('HGETALL', jkey(id))
end
-- Runnable candidates by (due_at, id): up to `limit` queued heads, and expired leases (those only
-- exist after a worker died, so a bounded batch is enough).
local function candidates(queued, leases, limit)
  local found = {}
  local head = redis.call('ZRANGEBYSCORE', queued, '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #head, 2 do found[#found + 1] = {head[i], tonumber(head[i + 1])} end
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', ARGV[2], 'LIMIT', 0, 100)
  for _, cand in ipairs(expired) do
    local due = tonumber(redis.call('HGET', jkey(cand), 'due_at'))
    if due then found[#found + 1] = {cand, due} end
  end
  table.sort(found, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  return found
end
"""
)

# ARGV: (as _CLAIMING), job id or '', kind or ''.
CLAIM = (
    _CLAIMING
    + """
local now = tonumber(ARGV[2])
local queued, leases = claim_sets(ARGV[8])
local id = nil
if ARGV[7] ~= '' then
  id = ARGV[7]
  if not redis.call('ZSCORE', P .. 'jobs:queued', id) then
    local lease = redis.call('ZSCORE', P .. 'jobs:leases', id)
    if not lease or tonumber(lease) > now then return false end
  end
else
  local found = candidates(queued, leases, 1)
  if found[1] then id = found[1][1] end
end
if id == nil then return false end
return take(id, queued, leases)
"""
)

# ARGV: (as _CLAIMING), limit, kind or ''. The claimed jobs' fields, earliest due first.
CLAIM_MANY = (
    _CLAIMING
    + """
local limit = tonumber(ARGV[7])
local queued, leases = claim_sets(ARGV[8])
local claimed, seen = {}, {}
for _, cand in ipairs(candidates(queued, leases, limit)) do
  if #claimed >= limit then break end
  if not seen[cand[1]] then
    seen[cand[1]] = true
    local fields = take(cand[1], queued, leases)
    if fields then claimed[#claimed + 1] = fields end
  end
end
return claimed
"""
)

# A batch of job state changes in one call (group commit). ARGV: P, then one JSON array of strings
# per change: id, guard ('owner' | 'not_done' | 'state'), guard value, attempt or '' (with
# 'owner'), new state, index score, then field/value pairs. One reply per change: 1 made, 0 refused.
TRANSITIONS = (
    _PRELUDE
    + """
local function transition(m)
  local id, guard, want = m[1], m[2], m[3]
  local current = state_of(id)
  if current == nil then return 0 end
  if guard == 'owner' then
    if not held(id, want, m[4]) then return 0 end
  elseif guard == 'not_done' then
    if current == 'done' then return 0 end
  elseif current ~= want then
    return 0
  end
  unindex(id, current)
  index(id, m[5], m[6])
  redis.call('HSET', jkey(id), unpack(m, 7))
  return 1
end
local replies = {}
for i = 2, #ARGV do replies[#replies + 1] = transition(cjson.decode(ARGV[i])) end
return replies
"""
)

# ARGV: P, job id, owner JSON, attempt, full key, value, TTL in ms or ''. One script: check and write.
SET_FENCED = (
    _PRELUDE
    + """
if not held(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
if ARGV[7] ~= '' then
  redis.call('SET', ARGV[5], ARGV[6], 'PX', ARGV[7])
else
  redis.call('SET', ARGV[5], ARGV[6])
end
return 1
"""
)

# ARGV: P, id, meta field/value pairs...
UPDATE_META = """
local k = ARGV[1] .. 'job:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
if #ARGV > 2 then redis.call('HSET', k, unpack(ARGV, 3)) end
return 1
"""

# ARGV: P, before, batch size. Returns how many jobs it deleted (at most the batch size).
PURGE = (
    _PRELUDE
    + """
local ids = redis.call('ZRANGEBYSCORE', P .. 'jobs:finished', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local current = state_of(id)
  if current then unindex(id, current) end
  redis.call('ZREM', P .. 'jobs:finished', id)
  redis.call('ZREM', P .. 'jobs:created', id)
  local key = redis.call('HGET', jkey(id), 'key')
  if key and key ~= 'null' then
    local name = cjson.decode(key)
    if redis.call('HGET', P .. 'jobs:keys', name) == id then redis.call('HDEL', P .. 'jobs:keys', name) end
  end
  redis.call('DEL', jkey(id))
end
return #ids
"""
)

DELETE_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
EXPIRE_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# ARGV: amount, TTL in ms or ''. The TTL is set only when this call created the key.
INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

# KEYS[1] the marker; ARGV: value, marker TTL ms or '', counter TTL ms or '', counter key prefix,
# then (counter, field, amount) triples. The marker's NX set and every HINCRBY are one atomic step.
COUNTERS_ADD_ONCE = """
local set
if ARGV[2] == '' then set = redis.call('SET', KEYS[1], ARGV[1], 'NX')
else set = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) end
if not set then return 0 end
for i = 5, #ARGV, 3 do
  local key = ARGV[4] .. ARGV[i]
  redis.call('HINCRBY', key, ARGV[i + 1], ARGV[i + 2])
  if ARGV[3] ~= '' and redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ARGV[3]) end
end
return 1
"""
