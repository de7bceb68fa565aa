package ledger

import "github.com/redis/go-redis/v9"

// Key layout. Every key of rollout R starts with its base
// B = "<prefix>{R}:"; the braces are a Redis Cluster hash tag, so all keys
// of one rollout hash to one slot:
//
//	B r          hash   rollout record: hash spec state reason wave seq attempt total waves created updated
//	                    token (its creator's) written (instances written while applying)
//	B applying   string the creator's lease while the rollout is being created (expires)
//	B claiming   string set by each claim of the rollout; its claims count as live while no record exists (expires)
//	B c          hash   overall counters: succeeded skipped failed ambiguous cancelled terminal, plus total
//	B w:<k>      list   instance IDs of wave k, in plan order
//	B wc:<k>     hash   wave k counters (as above) plus size, complete, approved, started, soak_until
//	B i:<id>     hash   one instance: st w g zone gen tok rtk rid oimg oop pf tries resets first intent called done code err nimg adopted
//	                    sv svv (serving state JSON and its version, serving.go)
//	                    uz (the zone of its place among the unavailable, unavailable.go)
//	                    (gen, tries and resets are absent until first set, and read as 0)
//	B held       set    instances parked while the rollout was not running
//	B resetting  set    instances whose reset the cloud accepted, not yet verified
//	B hooks      hash   SHA-256 of each webhook step's token → instance and result (hooks.go)
//	B drained    set    instances whose load-balancer weights are recorded and not yet restored (serving.go)
//	B retrying   set    instances a retry-failed reopened and has not yet returned (see retryChunkScript)
//	B u, B uz:<zone>, B uzs  sets  instances holding a place among the unavailable (unavailable.go)
//	B fence      string fencing-token counter
//	B once       hash   events already announced (Ledger.Once)
//	B src        string the plan source of a scheduled rollout with a select, JSON (Ledger.Source)
//	B sel        string what the select of a scheduled occurrence resolved to, JSON, written before it is created (Ledger.Resolve; expires until then)
//
// Outside any rollout: "<prefix>rollouts" (sorted set of rollout IDs by
// creation), "<prefix>finished" (retention.go), "<prefix>claim:<instance>"
// (the rollout that holds an instance; see claimScript) and
// "<prefix>drainer:<instance>" (the rollout that last recorded its weights
// to drain it; Ledger.NoteDrainer). None is
// hash-tagged and no script touches one together with a rollout's keys:
// each claim script touches one claim key, and the indexes are written by
// plain commands beside the scripts.
//
// Scripts declare every key they touch in KEYS, named by the caller. A
// script that must find a key from data it reads (the wave counters of an
// instance's wave, the instance hashes listed in a wave list or a set)
// derives it with sib from one of its KEYS of the same rollout, so the key
// carries the same hash tag and lies in the same slot; each such script
// says so. No script touches keys of two rollouts or of two slots, so the
// ledger runs on Redis Cluster (docs/operations.md, "Cluster").
// Create writes instances in MULTI/EXEC transactions, not scripts: they
// are cheaper for Redis per instance, and WATCH on B r guards them (see
// Ledger.writeInstances).
//
// Abort and retry-failed sweep a rollout sweepChunk instances per script
// call, from a cursor (wave, offset) that the Go side keeps, so no call
// holds Redis for longer than one chunk whatever the fleet's size.
//
// Instance states are strings (see InstanceState); "terminal" counts every
// terminal outcome once.

// sib is prepended to scripts that derive keys: sib(k, suffix, name) is
// the key called name of the rollout that k (a key ending in suffix)
// belongs to, e.g. sib(KEYS[1], 'r', 'wc:3').
const sib = `
local function sib(k, suffix, name) return string.sub(k, 1, #k - #suffix) .. name end
`

// beginScript starts a reset attempt.
//
// KEYS[1] B i:<id>, KEYS[2] B r, KEYS[3] B fence, KEYS[4] B held, KEYS[5] B c;
// B wc:<w> of the instance's wave w, B rc:<region> of its region, and the
// unavailable sets of an instance parked or cancelled (releaseUnavailable),
// are derived from KEYS[5].
// ARGV[1] instance ID, ARGV[2] gen, ARGV[3] now (unix ms), ARGV[4] 1 when
// the caller is ready to call (else 'again' where it would proceed)
// Returns {action, token, intent_ms}: action is one of
// missing | stale | done | verify | reconcile | held | cancelled | proceed | again.
var beginScript = redis.NewScript(sib + releaseUnavailable + `
local ik, rk = KEYS[1], KEYS[2]
-- One read per hash: Redis counts (and runs) every call a script makes.
local f = redis.call('HMGET', ik, 'st', 'gen', 'tok', 'intent', 'w', 'tries', 'first', 'rg')
local st, w = f[1], f[5]
if not st then return {'missing', '0', '0'} end
-- gen is absent until the instance's first new generation.
if (f[2] or '0') ~= ARGV[2] then return {'stale', '0', '0'} end
if st == 'calling' then
  return {'reconcile', f[3] or '0', f[4] or '0'}
end
if st == 'resetting' then return {'verify', '0', '0'} end
if st ~= 'pending' and st ~= 'held' then return {'done', '0', '0'} end
local r = redis.call('HMGET', rk, 'state', 'wave')
local rs = r[1]
if rs == 'aborted' then
  redis.call('HSET', ik, 'st', 'cancelled', 'done', ARGV[3])
  redis.call('SREM', KEYS[4], ARGV[1])
  releaseUnavailable(ik, KEYS[5], 'c', ARGV[1])
  local scopes = {KEYS[5], sib(KEYS[5], 'c', 'wc:' .. w)}
  if f[8] then scopes[3] = sib(KEYS[5], 'c', 'rc:' .. f[8]) end
  for _, ck in ipairs(scopes) do
    redis.call('HINCRBY', ck, 'cancelled', 1)
    redis.call('HINCRBY', ck, 'terminal', 1)
  end
  return {'cancelled', '0', '0'}
end
-- A later wave is never called before its gate: tasks of a wave beyond the
-- current one (possible only through manual re-enqueues) are parked too.
if rs ~= 'running' or tonumber(w) > tonumber(r[2]) then
  redis.call('HSET', ik, 'st', 'held')
  redis.call('SADD', KEYS[4], ARGV[1])
  releaseUnavailable(ik, KEYS[5], 'c', ARGV[1])
  return {'held', '0', '0'}
end
if ARGV[4] ~= '1' then return {'again', '0', '0'} end
local tok = redis.call('INCR', KEYS[3])
redis.call('HSET', ik, 'st', 'calling', 'tok', tok, 'intent', ARGV[3],
  'tries', (tonumber(f[6] or '0') or 0) + 1, 'first', f[7] or ARGV[3])
return {'proceed', tostring(tok), ARGV[3]}
`)

// calledScript records that the API accepted the reset: calling → resetting.
//
// KEYS[1] B i:<id>, KEYS[2] B resetting
// ARGV[1] instance ID, ARGV[2] token, ARGV[3] request ID, ARGV[4] now
// Returns 1, or 0 when the token no longer holds the instance (fenced out).
var calledScript = redis.NewScript(`
local ik = KEYS[1]
local f = redis.call('HMGET', ik, 'st', 'tok', 'rid', 'resets')
local st = f[1]
if f[2] ~= ARGV[2] then return 0 end
-- A replay of this very call (same token and request) already succeeded.
if st == 'resetting' and f[3] == ARGV[3] then return 1 end
if st ~= 'calling' then return 0 end
redis.call('HSET', ik, 'st', 'resetting', 'rid', ARGV[3], 'called', ARGV[4], 'code', '', 'err', '', 'adopted', '',
  'resets', (tonumber(f[4] or '0') or 0) + 1)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// adoptScript records that, instead of calling, the worker adopted a
// reinstall the cloud shows running or finished since pre-flight (see
// rollout.BeforeCall): calling → resetting under that operation's request
// ID, to be judged by verification. The reset counter is not incremented:
// no call of this attempt reached the cloud.
//
// KEYS[1] B i:<id>, KEYS[2] B resetting
// ARGV[1] instance ID, ARGV[2] token, ARGV[3] request ID (” on the legacy
// API), ARGV[4] now, ARGV[5] why
// Returns 1, or 0 when the token no longer holds the instance (fenced out).
var adoptScript = redis.NewScript(`
local ik = KEYS[1]
local f = redis.call('HMGET', ik, 'st', 'tok', 'rid')
local st = f[1]
if f[2] ~= ARGV[2] then return 0 end
if st == 'resetting' and f[3] == ARGV[3] then return 1 end
if st ~= 'calling' then return 0 end
redis.call('HSET', ik, 'st', 'resetting', 'rid', ARGV[3], 'called', ARGV[4], 'code', '', 'err', '', 'adopted', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// releaseScript undoes an intent whose call certainly did not reach the
// cloud (the API refused it): calling → pending or held. The instance
// gives its place among the unavailable back (releaseUnavailable), unless
// it goes back to pending still drained (B drained): out of service, it
// keeps its place until its next attempt calls or it is parked.
//
// KEYS[1] B i:<id>, KEYS[2] B held; B drained and the unavailable sets are
// derived from KEYS[2].
// ARGV[1] instance ID, ARGV[2] token, ARGV[3] new state (pending|held),
// ARGV[4] error code, ARGV[5] error message
// Returns 1, or 0 when fenced out.
var releaseScript = redis.NewScript(sib + releaseUnavailable + `
local ik = KEYS[1]
if redis.call('HGET', ik, 'st') ~= 'calling' or redis.call('HGET', ik, 'tok') ~= ARGV[2] then return 0 end
redis.call('HSET', ik, 'st', ARGV[3], 'code', ARGV[4], 'err', ARGV[5])
if ARGV[3] == 'held' then redis.call('SADD', KEYS[2], ARGV[1]) end
if ARGV[3] == 'held' or redis.call('SISMEMBER', sib(KEYS[2], 'held', 'drained'), ARGV[1]) == 0 then
  releaseUnavailable(ik, KEYS[2], 'held', ARGV[1])
end
return 1
`)

// retakeScript moves an intent to a new token after a reconcile proved the
// old call never landed, so that a slower holder of the old token is fenced out.
//
// KEYS[1] B i:<id>, KEYS[2] B fence, KEYS[3] B r
// ARGV[1] old token, ARGV[2] now, ARGV[3] a random ID of this retake, so
// that a replay of the same script call (a client retrying a lost reply)
// returns the token it already issued
// Returns the new token, 0 when fenced out, or -1 when the rollout is not
// running: as with Begin, no new call starts then.
var retakeScript = redis.NewScript(`
local ik = KEYS[1]
if redis.call('HGET', ik, 'st') ~= 'calling' then return 0 end
if redis.call('HGET', ik, 'tok') ~= ARGV[1] then
  if redis.call('HGET', ik, 'rtk') == ARGV[3] then return tonumber(redis.call('HGET', ik, 'tok')) end
  return 0
end
if redis.call('HGET', KEYS[3], 'state') ~= 'running' then return -1 end
local tok = redis.call('INCR', KEYS[2])
redis.call('HSET', ik, 'tok', tok, 'intent', ARGV[2], 'rtk', ARGV[3])
redis.call('HINCRBY', ik, 'tries', 1)
return tok
`)

// finishScript moves an instance to a terminal state and counts it once.
//
// KEYS[1] B i:<id>, KEYS[2] B r, KEYS[3] B c, KEYS[4] B held,
// KEYS[5] B resetting; B wc:<w> of the instance's wave w, B rc:<region> of
// its region (when the rollout counts regions), and the unavailable sets
// it leaves (releaseUnavailable), are derived from KEYS[3].
// ARGV[1] instance ID, ARGV[2] comma-separated states it may leave,
// ARGV[3] token that must hold it (” for any), ARGV[4] new state,
// ARGV[5] code, ARGV[6] message, ARGV[7] now, ARGV[8] new image
// Returns {changed, wave, wave counters..., overall counters..., wave size,
// wave complete, total, rollout state[, region, region counters...]} with
// counters in the order succeeded skipped failed ambiguous cancelled
// terminal.
var finishScript = redis.NewScript(sib + releaseUnavailable + `
local ik, ck = KEYS[1], KEYS[3]
local f = redis.call('HMGET', ik, 'st', 'w', 'tok', 'rg')
local st, w = f[1], f[2]
if not st then return {0} end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == st then ok = true end end
if ok and ARGV[3] ~= '' and f[3] ~= ARGV[3] then ok = false end
local changed = 0
local wk = sib(ck, 'c', 'wc:' .. w)
-- The region's counters, when the rollout counts regions (rg is set).
local rgk = sib(ck, 'c', 'rc:' .. (f[4] or ''))
if ok then
  changed = 1
  redis.call('HSET', ik, 'st', ARGV[4], 'code', ARGV[5], 'err', ARGV[6], 'done', ARGV[7], 'nimg', ARGV[8])
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('SREM', KEYS[5], ARGV[1])
  releaseUnavailable(ik, ck, 'c', ARGV[1])
  for _, k in ipairs({ck, wk}) do
    redis.call('HINCRBY', k, ARGV[4], 1)
    redis.call('HINCRBY', k, 'terminal', 1)
  end
  if f[4] then
    redis.call('HINCRBY', rgk, ARGV[4], 1)
    redis.call('HINCRBY', rgk, 'terminal', 1)
  end
end
local out = {changed, tonumber(w)}
local names = {'succeeded', 'skipped', 'failed', 'ambiguous', 'cancelled', 'terminal', 'size', 'complete'}
local wv = redis.call('HMGET', wk, unpack(names))
if ok and wv[8] ~= '1' and (tonumber(wv[6] or '0') or 0) >= (tonumber(wv[7] or '0') or 0) then
  redis.call('HSET', wk, 'complete', '1')
  wv[8] = '1'
end
for i = 1, 6 do table.insert(out, tonumber(wv[i] or '0') or 0) end
local cv = redis.call('HMGET', ck, unpack(names, 1, 6))
for i = 1, 6 do table.insert(out, tonumber(cv[i] or '0') or 0) end
table.insert(out, tonumber(wv[7] or '0') or 0)
table.insert(out, wv[8] == '1' and 1 or 0)
local r = redis.call('HMGET', KEYS[2], 'total', 'state')
table.insert(out, tonumber(r[1] or '0'))
table.insert(out, r[2] or '')
if f[4] then
  table.insert(out, f[4])
  local rv = redis.call('HMGET', rgk, unpack(names, 1, 6))
  for i = 1, 6 do table.insert(out, tonumber(rv[i] or '0') or 0) end
end
return out
`)

// setStateScript changes the rollout state when it is one of a set.
//
// KEYS[1] B r
// ARGV[1] comma-separated states it may leave ('*' any non-terminal),
// ARGV[2] new state, ARGV[3] reason, ARGV[4] now
// Returns the previous state when it changed, or ” when it did not.
var setStateScript = redis.NewScript(`
local rk = KEYS[1]
local st = redis.call('HGET', rk, 'state')
if not st then return '' end
local ok = false
if ARGV[1] == '*' then
  ok = st ~= 'completed' and st ~= 'aborted'
else
  for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then ok = true end end
end
if not ok then return '' end
redis.call('HSET', rk, 'state', ARGV[2], 'reason', ARGV[3], 'updated', ARGV[4])
return st
`)

// advanceScript passes the gate of wave k.
//
// KEYS[1] B r, KEYS[2] B c, KEYS[3] B wc:<k>, KEYS[4] B wc:<k+1>
// ARGV[1] k, ARGV[2] approval required (0|1), ARGV[3] window open (0|1),
// ARGV[4] last wave (0|1), ARGV[5] now
// Returns {outcome, current wave, state}: outcome is one of
// blocked (rollout not running) | stale (current wave is not k) |
// incomplete | awaiting | window | completed | started (current wave is now k+1).
var advanceScript = redis.NewScript(`
local rk, wk = KEYS[1], KEYS[3]
local st = redis.call('HGET', rk, 'state')
local cur = tonumber(redis.call('HGET', rk, 'wave') or '-1')
local k = tonumber(ARGV[1])
if st ~= 'running' then return {'blocked', cur, st or ''} end
if cur ~= k then return {'stale', cur, st} end
if redis.call('HGET', wk, 'complete') ~= '1' then return {'incomplete', cur, st} end
if ARGV[4] == '1' then
  -- Retried instances of earlier waves must finish too.
  local term = tonumber(redis.call('HGET', KEYS[2], 'terminal') or '0')
  if term < tonumber(redis.call('HGET', rk, 'total') or '0') then return {'incomplete', cur, st} end
end
if ARGV[2] == '1' and redis.call('HGET', wk, 'approved') ~= '1' then
  redis.call('HSET', rk, 'state', 'awaiting_approval', 'reason', 'wave ' .. (k + 2) .. ' awaits approval', 'updated', ARGV[5])
  return {'awaiting', cur, 'awaiting_approval'}
end
if ARGV[3] ~= '1' then return {'window', cur, st} end
if ARGV[4] == '1' then
  redis.call('HSET', rk, 'state', 'completed', 'reason', '', 'updated', ARGV[5])
  return {'completed', cur, 'completed'}
end
redis.call('HSET', rk, 'wave', k + 1, 'updated', ARGV[5])
redis.call('HSET', KEYS[4], 'started', ARGV[5])
return {'started', k + 1, st}
`)

// resumeScript sets a paused (or approval-waiting) rollout running again and
// returns the parked instances with their new generation.
//
// KEYS[1] B r, KEYS[2] B held; B wc:<cur> of the current wave is derived
// from KEYS[1], and B i:<id> of each held instance from KEYS[2].
// ARGV[1] comma-separated states it may leave, ARGV[2] now,
// ARGV[3] 1 to also mark the current wave approved
// Returns {prev state (” if unchanged), seq, wave, id1, gen1, w1, id2, ...}.
var resumeScript = redis.NewScript(sib + `
local rk, hk = KEYS[1], KEYS[2]
local st = redis.call('HGET', rk, 'state')
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then ok = true end end
if not ok then return {''} end
local cur = redis.call('HGET', rk, 'wave')
if ARGV[3] == '1' then redis.call('HSET', sib(rk, 'r', 'wc:' .. cur), 'approved', '1') end
redis.call('HSET', rk, 'state', 'running', 'reason', '', 'updated', ARGV[2])
local seq = redis.call('HINCRBY', rk, 'seq', 1)
local out = {st, seq, tonumber(cur)}
for _, id in ipairs(redis.call('SMEMBERS', hk)) do
  local ik = sib(hk, 'held', 'i:' .. id)
  if redis.call('HGET', ik, 'st') == 'held' then
    redis.call('HSET', ik, 'st', 'pending')
    local gen = redis.call('HINCRBY', ik, 'gen', 1)
    table.insert(out, id)
    table.insert(out, gen)
    table.insert(out, tonumber(redis.call('HGET', ik, 'w')))
  end
end
redis.call('DEL', hk)
return out
`)

// abortScript aborts a rollout; Ledger.Abort then cancels its instances
// chunk by chunk with abortChunkScript and ends with abortDoneScript.
//
// KEYS[1] B r
// ARGV[1] reason, ARGV[2] now
// Returns {prev, swept}: prev is the previous state, or ” when the rollout
// was already terminal (or missing); swept is 1 when no sweep is needed
// (the rollout is not aborted, or an earlier abort finished its sweep).
var abortScript = redis.NewScript(`
local rk = KEYS[1]
local st = redis.call('HGET', rk, 'state')
if not st or st == 'completed' then return {'', 1} end
if st == 'aborted' then return {'', redis.call('HGET', rk, 'swept') == '1' and 1 or 0} end
redis.call('HSET', rk, 'state', 'aborted', 'reason', ARGV[1], 'updated', ARGV[2], 'swept', 0)
return {st, 0}
`)

// abortChunkScript cancels the instances of one chunk of a wave of an
// aborted rollout that were not called yet (pending or parked); calls in
// flight finish. It changes an instance only once, so chunks may be run
// again (an interrupted abort is redone from the start).
//
// KEYS[1] B r, KEYS[2] B c, KEYS[3] B w:<k>, KEYS[4] B wc:<k>,
// KEYS[5] B held; B i:<id> of each listed instance, B rc:<region> of its
// region, and the unavailable sets a cancelled one leaves (a pending instance may hold a place while
// it drains), are derived from KEYS[1].
// ARGV[1] offset in the wave list, ARGV[2] chunk size, ARGV[3] now
// Returns {next offset (-1 at the end of the wave, -2 when the rollout is
// not aborted), instances examined, instances cancelled}.
var abortChunkScript = redis.NewScript(sib + releaseUnavailable + `
local rk = KEYS[1]
if redis.call('HGET', rk, 'state') ~= 'aborted' then return {-2, 0, 0} end
local off, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('LRANGE', KEYS[3], off, off + n - 1)
local cancelled = 0
local byRegion = {}
for _, id in ipairs(ids) do
  local ik = sib(rk, 'r', 'i:' .. id)
  local f = redis.call('HMGET', ik, 'st', 'rg')
  local s = f[1]
  if s == 'pending' or s == 'held' then
    redis.call('HSET', ik, 'st', 'cancelled', 'done', ARGV[3])
    redis.call('SREM', KEYS[5], id)
    releaseUnavailable(ik, rk, 'r', id)
    cancelled = cancelled + 1
    if f[2] then byRegion[f[2]] = (byRegion[f[2]] or 0) + 1 end
  end
end
if cancelled > 0 then
  for _, ck in ipairs({KEYS[2], KEYS[4]}) do
    redis.call('HINCRBY', ck, 'cancelled', cancelled)
    redis.call('HINCRBY', ck, 'terminal', cancelled)
  end
  for rg, n in pairs(byRegion) do
    local ck = sib(rk, 'r', 'rc:' .. rg)
    redis.call('HINCRBY', ck, 'cancelled', n)
    redis.call('HINCRBY', ck, 'terminal', n)
  end
end
local nxt = off + #ids
if #ids < n then nxt = -1 end
return {nxt, #ids, cancelled}
`)

// abortDoneScript ends the sweep of an aborted rollout.
//
// KEYS[1] B r, KEYS[2] B held
var abortDoneScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'aborted' then return 0 end
redis.call('HSET', KEYS[1], 'swept', 1)
redis.call('DEL', KEYS[2])
return 1
`)

// retryChunkScript gives the failed instances of one chunk of a wave a new
// attempt: failed → pending with a new generation, counters reduced. Each
// reopened instance joins B retrying until retryDoneScript, and a chunk
// returns the pending members of that set again with their generation:
// so a retry-failed interrupted after some chunks and run again returns
// every instance it reopened, and none reopens twice.
//
// KEYS[1] B r, KEYS[2] B c, KEYS[3] B w:<k>, KEYS[4] B wc:<k>,
// KEYS[5] B retrying; B i:<id> of each listed instance, and B rc:<region>
// of its region, are derived from KEYS[1].
// ARGV[1] offset in the wave list, ARGV[2] chunk size, ARGV[3] 1 to
// include ambiguous instances
// Returns {next offset (-1 at the end of the wave, -2 when the rollout is
// aborted or missing), instances examined, id1, gen1, id2, gen2, ...}.
var retryChunkScript = redis.NewScript(sib + `
local rk = KEYS[1]
local st = redis.call('HGET', rk, 'state')
if not st or st == 'aborted' then return {-2, 0} end
local off, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('LRANGE', KEYS[3], off, off + n - 1)
local again = redis.call('SCARD', KEYS[5]) > 0
local nxt = off + #ids
if #ids < n then nxt = -1 end
local out = {nxt, #ids}
local dec = {failed = 0, ambiguous = 0}
local byRegion = {}
for _, id in ipairs(ids) do
  local ik = sib(rk, 'r', 'i:' .. id)
  local f = redis.call('HMGET', ik, 'st', 'rg')
  local s = f[1]
  if s == 'failed' or (ARGV[3] == '1' and s == 'ambiguous') then
    redis.call('HSET', ik, 'st', 'pending', 'tries', 0, 'code', '', 'err', '', 'done', '')
    redis.call('HDEL', ik, 'first')
    local gen = redis.call('HINCRBY', ik, 'gen', 1)
    redis.call('SADD', KEYS[5], id)
    dec[s] = dec[s] + 1
    if f[2] then
      local r = byRegion[f[2]] or {failed = 0, ambiguous = 0}
      r[s] = r[s] + 1
      byRegion[f[2]] = r
    end
    table.insert(out, id)
    table.insert(out, gen)
  elseif again and s == 'pending' and redis.call('SISMEMBER', KEYS[5], id) == 1 then
    table.insert(out, id)
    table.insert(out, tonumber(redis.call('HGET', ik, 'gen') or '0'))
  end
end
local moved = dec.failed + dec.ambiguous
if moved > 0 then
  for _, ck in ipairs({KEYS[2], KEYS[4]}) do
    -- 0 - n, not -n: Lua writes -0 as "-0", which HINCRBY refuses.
    for s, n in pairs(dec) do
      if n > 0 then redis.call('HINCRBY', ck, s, 0 - n) end
    end
    redis.call('HINCRBY', ck, 'terminal', 0 - moved)
  end
  for rg, r in pairs(byRegion) do
    local ck = sib(rk, 'r', 'rc:' .. rg)
    for st, n in pairs(r) do
      if n > 0 then
        redis.call('HINCRBY', ck, st, 0 - n)
        redis.call('HINCRBY', ck, 'terminal', 0 - n)
      end
    end
  end
  redis.call('HSET', KEYS[4], 'complete', '0')
end
return out
`)

// retryDoneScript ends a retry-failed: when it reopened any instance, the
// rollout starts a new attempt and runs again.
//
// KEYS[1] B r, KEYS[2] B retrying
// ARGV[1] now, ARGV[2] 1 when the chunks returned any instance
// Returns {seq, wave}, {0, wave} when nothing was reopened, or {} when the
// rollout is aborted or missing.
var retryDoneScript = redis.NewScript(`
local rk = KEYS[1]
local st = redis.call('HGET', rk, 'state')
if not st or st == 'aborted' then return {} end
redis.call('DEL', KEYS[2])
local wave = tonumber(redis.call('HGET', rk, 'wave'))
if ARGV[2] ~= '1' then return {0, wave} end
redis.call('HINCRBY', rk, 'attempt', 1)
redis.call('HSET', rk, 'state', 'running', 'reason', '', 'updated', ARGV[1])
return {redis.call('HINCRBY', rk, 'seq', 1), wave}
`)

// createScript starts the creation of a rollout: it writes the record
// (state applying, owned by the caller's token, under a lease that
// expires), the counters, the wave hashes and the fencing counter, only
// when no record of this rollout exists, or when one exists in state
// applying whose creator's lease expired (it died: its writes are wiped
// and redone). Ledger.Create then writes the instances in transactions
// guarded by the token (see Ledger.writeInstances).
//
// KEYS[1] B r, KEYS[2] B applying, KEYS[3] B c, KEYS[4] B fence,
// KEYS[5] B held, KEYS[6] B resetting, KEYS[7] B retrying, then W wave
// lists B w:<k>, W wave hashes B wc:<k>, and R region hashes B rc:<region>
// ARGV[1] plan hash, ARGV[2] token, ARGV[3] now, ARGV[4] lease (ms),
// ARGV[5] spec JSON, ARGV[6] total, ARGV[7] W, ARGV[8] wave, ARGV[9] seq,
// ARGV[10] first fencing token - 1, ARGV[11..16] overall counters
// (succeeded skipped failed ambiguous cancelled terminal), then per wave
// size, the six counters, complete (0|1), approved (0|1); then R and per
// region its size and six counters
// Returns {how, detail}: how is created | takeover (both: write the
// instances), exists (created and past applying), changed (detail is the
// stored plan hash) or applying (another creator holds the lease).
var createScript = redis.NewScript(`
local rk = KEYS[1]
local h = redis.call('HGET', rk, 'hash')
local how = 'created'
if h then
  if h ~= ARGV[1] then return {'changed', h} end
  if redis.call('HGET', rk, 'state') ~= 'applying' then return {'exists', ''} end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'applying', ''} end
  how = 'takeover'
end
redis.call('DEL', unpack(KEYS))
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
redis.call('HSET', rk, 'hash', ARGV[1], 'state', 'applying', 'spec', ARGV[5], 'total', ARGV[6],
  'waves', ARGV[7], 'wave', ARGV[8], 'seq', ARGV[9], 'attempt', 1, 'created', ARGV[3], 'updated', ARGV[3],
  'token', ARGV[2], 'written', 0)
redis.call('SET', KEYS[4], ARGV[10])
local names = {'succeeded', 'skipped', 'failed', 'ambiguous', 'cancelled', 'terminal'}
local function counters(a)
  local f = {}
  for i, name in ipairs(names) do f[#f + 1] = name; f[#f + 1] = ARGV[a + i - 1] end
  return f
end
local c = counters(11)
c[#c + 1] = 'total'; c[#c + 1] = ARGV[6]
redis.call('HSET', KEYS[3], unpack(c))
local W = tonumber(ARGV[7])
for k = 0, W - 1 do
  local a = 17 + k * 9
  local f = counters(a + 1)
  f[#f + 1] = 'size'; f[#f + 1] = ARGV[a]
  if ARGV[a + 7] == '1' then f[#f + 1] = 'complete'; f[#f + 1] = '1' end
  if ARGV[a + 8] == '1' then f[#f + 1] = 'approved'; f[#f + 1] = '1' end
  redis.call('HSET', KEYS[8 + W + k], unpack(f))
end
local a = 17 + W * 9
for j = 1, tonumber(ARGV[a] or '0') do
  local b = a + 1 + (j - 1) * 7
  local f = counters(b + 1)
  f[#f + 1] = 'size'; f[#f + 1] = ARGV[b]
  redis.call('HSET', KEYS[7 + 2 * W + j], unpack(f))
end
return {how, ''}
`)

// activateScript ends the creation of a rollout: applying → running or
// scheduled, when every instance is written and, if the caller knows the
// creator's token, that token still owns the creation.
//
// KEYS[1] B r, KEYS[2] B applying
// ARGV[1] token (” when unknown), ARGV[2] new state, ARGV[3] now
// Returns 1, or 0 when the rollout was not (or no longer) the caller's to activate.
var activateScript = redis.NewScript(`
local rk = KEYS[1]
if redis.call('HGET', rk, 'state') ~= 'applying' then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', rk, 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', rk, 'written') ~= redis.call('HGET', rk, 'total') then return 0 end
redis.call('HSET', rk, 'state', ARGV[2], 'reason', '', 'updated', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
`)

// Claims. Which rollout holds an instance is "<prefix>claim:<instance>",
// one string per instance whose value is the owner's ID. Each claim key
// lies in a slot of its own (it carries no hash tag), so every claim
// script touches exactly one claim key, and Ledger.Claim runs one script
// call per instance, pipelined: all or nothing by compensation (it takes
// back the claims it made when another live rollout holds any). Whether an
// owner is live is judged apart, by ownerScript on the owner's own slot,
// and a takeover of a dead owner's claim is a compare-and-set on the claim
// key, so no script reads two slots.

// claimScript claims one instance for a rollout: when it is free, already
// the rollout's, or held by the owner the caller found dead.
//
// KEYS[1] the claim key; ARGV[1] rollout ID, ARGV[2] the owner that may be
// displaced (” for none: claim only a free instance)
// Returns {'new'} when this call claimed it, {'mine'} when the rollout
// already held it, or {'held', owner} (nothing written).
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return {'mine'} end
if not v or (ARGV[2] ~= '' and v == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return {'new'}
end
return {'held', v}
`)

// ownerScript judges whether a claim's owner is live. A claim whose owner
// finished (completed, aborted) or no longer exists is free: a rollout
// that died without releasing its claims blocks nothing. Claims are taken
// before the rollout's record is written, so "no longer exists" must not
// be "not yet written": each Claim first marks its rollout claiming
// (B claiming, applyLease long), and an owner without a record is live
// while that mark lasts. Likewise an owner whose creation is under way
// (state applying) is live while its creation lease (B applying) or the
// mark lasts; a creation that died frees its claims when both run out.
//
// An aborted owner is dead but for the instances whose reset call it still
// has in flight, which the caller judges apart (Ledger.holdersLive).
//
// KEYS[1] B r, KEYS[2] B applying, KEYS[3] B claiming, all of the owner.
// Returns 1 when the owner is live, 2 when it is aborted, else 0.
var ownerScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return redis.call('EXISTS', KEYS[3]) end
if st == 'applying' then
  if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
  return 0
end
if st == 'aborted' then return 2 end
if st == 'completed' then return 0 end
return 1
`)

// claimBatchScript is claimScript over many claim keys, for one server
// (never a cluster: its keys lie in many slots).
//
// KEYS the claim keys, ARGV[1] rollout ID, ARGV[1+i] the dead owner key i
// may be taken from (empty for none). Returns one reply per key: "new",
// "mine" or "held OWNER".
var claimBatchScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    out[i] = 'mine'
  elseif not v or (ARGV[i + 1] ~= '' and v == ARGV[i + 1]) then
    redis.call('SET', k, ARGV[1])
    out[i] = 'new'
  else
    out[i] = 'held ' .. v
  end
end
return out
`)

// unclaimBatchScript is unclaimScript over many claim keys, for one
// server. KEYS the claim keys, ARGV[1] rollout ID. Returns how many it
// released.
var unclaimBatchScript = redis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end
end
return n
`)

// unclaimScript releases one claim when the rollout still holds it.
//
// KEYS[1] the claim key, ARGV[1] rollout ID. Returns 1 when it released
// the claim, else 0.
var unclaimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
