import type { Redis } from 'ioredis';

/*
 * Stored flags and segments are `meta \n body`: `body` is the writer's JSON, passed through as an
 * opaque string, and `meta` a flat JSON object of the fields the store owns (version, timestamps,
 * kill switch). Scripts only ever decode and re-encode `meta`: cjson would turn an empty array in a
 * flag body into `{}` and round numbers to 14 digits, so it never touches bodies.
 */

/**
 * Idempotency records (a hash per claim id, expiring after the TTL), shared by every write script:
 * `idem_check` refuses a write whose claim id is recorded (the caller answers the record), and
 * `idem_record` records a claim in the same script as the write it belongs to. The hash holds the
 * fingerprint `f`, status `s`, result kind `k` ('record' a stored flag/segment, 'json', 'none'), the
 * result `r` and the attachment `a`. An empty fingerprint means the write carries no key.
 */
const IDEMPOTENCY = `
local function idem_check(ikey, fp)
  if fp == '' then return nil end
  local stored = redis.call('HGET', ikey, 'f')
  if not stored then return nil end
  if stored ~= fp then return 'reused' end
  return 'replay'
end

local function idem_record(ikey, fp, status, kind, result, attachment, ttl)
  if fp == '' then return end
  redis.call('HSET', ikey, 'f', fp, 's', status, 'k', kind, 'r', result, 'a', attachment)
  redis.call('PEXPIRE', ikey, ttl)
end
`;

/**
 * One flag or segment write, atomically: expectation check, revision INCR, hash write, change-log
 * append (entry id `${revision}-1`), global change-stream append and audit append.
 * KEYS: rev, flags, segments, log, audit, envs, changes, idempotency record.
 * ARGV: op, env, key, at, actor, reason, expect ('' | 'absent' | version), body, init, logMax,
 * auditMax, changesMax, idempotency fingerprint ('' for none), status, attachment, TTL (ms). For `flag.kill`, body is '1' to kill and '0' to revive. For `flag.schedule`,
 * body is the flag's new body ('' keeps it) and init the schedule's JSON ('' removes it); the
 * schedule lives in `meta`, like the kill switch, so a `flag.put` keeps it.
 * Returns {'ok', stored, revision}, {'err', code, currentVersion} or {'replay', '', -1} (the claim id
 * is recorded with this fingerprint: nothing was written).
 */
const WRITE = `${IDEMPOTENCY}
local op, env, key, at, actor, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local expect, body, init = ARGV[7], ARGV[8], ARGV[9]
local fp = ARGV[13]

local function split(raw)
  local nl = string.find(raw, '\\n', 1, true)
  return cjson.decode(string.sub(raw, 1, nl - 1)), string.sub(raw, nl + 1)
end

local function expectation(raw)
  if expect == 'absent' then
    if raw then return {'err', 'VIGIL_ALREADY_EXISTS', split(raw).version} end
  elseif expect ~= '' then
    if not raw then return {'err', 'VIGIL_NOT_FOUND', -1} end
    local version = split(raw).version
    if version ~= tonumber(expect) then return {'err', 'VIGIL_VERSION_CONFLICT', version} end
  end
  return nil
end

local function commit(rev, kind, value, action, before, after)
  local id = rev .. '-1'
  redis.call('SADD', KEYS[6], env)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], id, 'k', kind, 'v', value)
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[12], '*', 'env', env, 'rev', rev, 'k', kind, 'v', value)
  local audit = {'at', at, 'actor', actor, 'action', action, 'target', key}
  if reason ~= '' then table.insert(audit, 'reason'); table.insert(audit, reason) end
  if before then table.insert(audit, 'before'); table.insert(audit, before) end
  if after then table.insert(audit, 'after'); table.insert(audit, after) end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], id, unpack(audit))
end

local function current(hash)
  local raw = redis.call('HGET', hash, key)
  if raw == false then return nil end
  return raw
end

local function run()
if op == 'flag.put' then
  local raw = current(KEYS[2])
  local failed = expectation(raw)
  if failed then return failed end
  local rev = redis.call('INCR', KEYS[1])
  local meta
  if raw then meta = split(raw) else meta = cjson.decode(init); meta.createdAt = at end
  meta.version = rev
  meta.updatedAt = at
  local value = cjson.encode(meta) .. '\\n' .. body
  redis.call('HSET', KEYS[2], key, value)
  local action = 'flag.create'
  if raw then action = 'flag.update' end
  commit(rev, 'flag', value, action, raw, value)
  return {'ok', value, rev}
elseif op == 'flag.delete' then
  local raw = current(KEYS[2])
  local failed = expectation(raw)
  if failed then return failed end
  if not raw then return {'err', 'VIGIL_NOT_FOUND', -1} end
  local rev = redis.call('INCR', KEYS[1])
  redis.call('HDEL', KEYS[2], key)
  commit(rev, 'flag.delete', key, 'flag.delete', raw, nil)
  return {'ok', '', rev}
elseif op == 'flag.kill' then
  local raw = current(KEYS[2])
  if not raw then return {'err', 'VIGIL_NOT_FOUND', -1} end
  local meta, flagBody = split(raw)
  local kill = body == '1'
  if meta.killed == kill then return {'ok', raw, meta.version} end
  local rev = redis.call('INCR', KEYS[1])
  meta.version = rev
  meta.killed = kill
  meta.killedAt = nil
  meta.killedBy = nil
  meta.killReason = nil
  local action = 'flag.revive'
  if kill then
    action = 'flag.kill'
    meta.killedAt = at
    meta.killedBy = actor
    if reason ~= '' then meta.killReason = reason end
  end
  local value = cjson.encode(meta) .. '\\n' .. flagBody
  redis.call('HSET', KEYS[2], key, value)
  commit(rev, 'flag', value, action, raw, value)
  return {'ok', value, rev}
elseif op == 'flag.schedule' then
  local raw = current(KEYS[2])
  if not raw then return {'err', 'VIGIL_NOT_FOUND', -1} end
  local failed = expectation(raw)
  if failed then return failed end
  local meta, flagBody = split(raw)
  if body ~= '' then flagBody = body end
  if init == '' then meta.schedule = nil else meta.schedule = cjson.decode(init) end
  local rev = redis.call('INCR', KEYS[1])
  meta.version = rev
  local value = cjson.encode(meta) .. '\\n' .. flagBody
  redis.call('HSET', KEYS[2], key, value)
  commit(rev, 'flag', value, 'flag.schedule', raw, value)
  return {'ok', value, rev}
elseif op == 'segment.put' then
  local raw = current(KEYS[3])
  local failed = expectation(raw)
  if failed then return failed end
  local rev = redis.call('INCR', KEYS[1])
  local value = cjson.encode({version = rev, updatedAt = at}) .. '\\n' .. body
  redis.call('HSET', KEYS[3], key, value)
  commit(rev, 'segment', value, 'segment.upsert', raw, value)
  return {'ok', value, rev}
elseif op == 'segment.delete' then
  local raw = current(KEYS[3])
  if not raw then return {'err', 'VIGIL_NOT_FOUND', -1} end
  local rev = redis.call('INCR', KEYS[1])
  redis.call('HDEL', KEYS[3], key)
  commit(rev, 'segment.delete', key, 'segment.delete', raw, nil)
  return {'ok', '', rev}
end
return redis.error_reply('unknown op ' .. op)
end

local seen = idem_check(KEYS[8], fp)
if seen == 'reused' then return {'err', 'VIGIL_IDEMPOTENCY_KEY_REUSED', -1} end
if seen == 'replay' then return {'replay', '', -1} end
local out = run()
if out[1] == 'ok' then
  local kind = 'record'
  if op == 'flag.delete' or op == 'segment.delete' then kind = 'none' end
  idem_record(KEYS[8], fp, ARGV[14], kind, out[2], ARGV[15], ARGV[16])
end
return out
`;

/**
 * Where a tailer starts: the global stream's last id and every environment's revision, read together.
 * KEYS: changes, envs. ARGV: per-environment key prefix. Returns {lastId, env1, rev1, env2, rev2, ...}.
 */
const TAIL_START = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local out = {'0-0'}
if last[1] then out[1] = last[1][1] end
for _, env in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  table.insert(out, env)
  table.insert(out, redis.call('GET', ARGV[1] .. env .. ':rev') or '0')
end
return out
`;

/**
 * KEYS: tokens, tokenSecrets, idempotency record. ARGV: id, secretHash, json, then the claim's
 * fingerprint, status, attachment, TTL and the token info JSON it records. 1 when created, 0 when
 * the id or hash exists, 2 when the claim is recorded (a replay), 3 when it is recorded for another request.
 */
const TOKEN_CREATE = `${IDEMPOTENCY}
local seen = idem_check(KEYS[3], ARGV[4])
if seen == 'reused' then return 3 end
if seen == 'replay' then return 2 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
idem_record(KEYS[3], ARGV[4], ARGV[5], 'json', ARGV[8], ARGV[6], ARGV[7])
return 1
`;

/** KEYS: tokens, tokenSecrets. ARGV: secretHash. The token JSON or nil. */
const TOKEN_FIND = `
local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[1], id)
`;

/**
 * KEYS: tokens, tokenSecrets, idempotency record. ARGV: id, then the claim's fingerprint, status,
 * attachment, TTL. 1 when deleted, 0 when absent, 2 a replay, 3 the claim recorded for another request.
 */
const TOKEN_DELETE = `${IDEMPOTENCY}
local seen = idem_check(KEYS[3], ARGV[2])
if seen == 'reused' then return 3 end
if seen == 'replay' then return 2 end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[2], cjson.decode(raw).secretHash)
redis.call('HDEL', KEYS[1], ARGV[1])
idem_record(KEYS[3], ARGV[2], ARGV[3], 'none', '', ARGV[4], ARGV[5])
return 1
`;

/** KEYS: outbox, outboxDue. ARGV: id, json, notBefore, mode ('new' keeps an existing item, 'update' needs one). */
const OUTBOX_PUT = `
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if (ARGV[4] == 'new' and exists) or (ARGV[4] == 'update' and not exists) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
`;

/**
 * Compare-and-set of one incident. KEYS: incidents, incidentTimes, idempotency record. ARGV: id,
 * expected JSON, new JSON, detection time (ms), then the claim's fingerprint, status, attachment, TTL.
 * 1 when written, 0 when the stored JSON is no longer `expected`, 2 a replay, 3 the claim recorded
 * for another request.
 */
const INCIDENT_CAS = `${IDEMPOTENCY}
local seen = idem_check(KEYS[3], ARGV[5])
if seen == 'reused' then return 3 end
if seen == 'replay' then return 2 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
idem_record(KEYS[3], ARGV[5], ARGV[6], 'json', ARGV[3], ARGV[7], ARGV[8])
return 1
`;

/** KEYS: lock. ARGV: owner, ttlMs. Takes a free lock or renews one's own; 1 when held. */
const LOCK_ACQUIRE = `
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS: lock. ARGV: owner. Deletes the lock only when `owner` holds it. */
const LOCK_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type Arg = string | number;

/** The scripted commands `defineScripts` adds to a connection. */
export interface VigilScripts {
  vigilWrite(...args: Arg[]): Promise<[string, string, number]>;
  vigilTailStart(...args: Arg[]): Promise<string[]>;
  vigilTokenCreate(...args: Arg[]): Promise<number>;
  vigilTokenFind(...args: Arg[]): Promise<string | null>;
  vigilTokenDelete(...args: Arg[]): Promise<number>;
  vigilOutboxPut(...args: Arg[]): Promise<number>;
  vigilIncidentCas(...args: Arg[]): Promise<number>;
  vigilLockAcquire(...args: Arg[]): Promise<number>;
  vigilLockRelease(...args: Arg[]): Promise<number>;
}

/** Registers Vigil's Lua scripts on a connection (EVALSHA, loading on first use). */
export function defineScripts(redis: Redis): Redis & VigilScripts {
  redis.defineCommand('vigilWrite', { numberOfKeys: 8, lua: WRITE });
  redis.defineCommand('vigilTailStart', { numberOfKeys: 2, lua: TAIL_START });
  redis.defineCommand('vigilTokenCreate', { numberOfKeys: 3, lua: TOKEN_CREATE });
  redis.defineCommand('vigilTokenFind', { numberOfKeys: 2, lua: TOKEN_FIND });
  redis.defineCommand('vigilTokenDelete', { numberOfKeys: 3, lua: TOKEN_DELETE });
  redis.defineCommand('vigilOutboxPut', { numberOfKeys: 2, lua: OUTBOX_PUT });
  redis.defineCommand('vigilIncidentCas', { numberOfKeys: 3, lua: INCIDENT_CAS });
  redis.defineCommand('vigilLockAcquire', { numberOfKeys: 1, lua: LOCK_ACQUIRE });
  redis.defineCommand('vigilLockRelease', { numberOfKeys: 1, lua: LOCK_RELEASE });
  return redis as Redis & VigilScripts;
}
