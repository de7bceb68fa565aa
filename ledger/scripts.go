package ledger

import "github.com/redis/go-redis/v9"

// Every script derives the keys of one rollout from ARGV[1], the rollout's
// key base "<prefix>{<rollout>}:". The braces are a Redis Cluster hash tag,
// so all keys of one rollout share a slot.
//
// Key layout under the base B:
//
//	B r          hash   rollout record: spec, state, wave, seq, reason, attempt, total, ...
//	B c          hash   overall counters: succeeded skipped failed ambiguous cancelled terminal
//	B w:<k>      list   instance IDs of wave k, in order
//	B wc:<k>     hash   wave k counters (as above) plus size, complete, approved, soak_until
//	B i:<id>     hash   one instance: st w g gen tok rid oimg oop pf tries resets first intent called done code err nimg adopted
//	B held       set    instances parked while the rollout was not running
//	B resetting  set    instances whose reset the cloud accepted, not yet verified
//	B fence      string fencing-token counter
//	B once       hash   events already announced (Ledger.Once)
//
// Instance states are strings (see InstanceState); "terminal" counts every
// terminal outcome once.

// beginScript starts a reset attempt.
//
// ARGV[1] key base, ARGV[2] instance ID, ARGV[3] gen, ARGV[4] now (unix ms)
// Returns {action, token, intent_ms}: action is one of
// missing | stale | done | verify | reconcile | held | cancelled | proceed.
var beginScript = redis.NewScript(`
local b = ARGV[1]
local ik = b .. 'i:' .. ARGV[2]
local st = redis.call('HGET', ik, 'st')
if not st then return {'missing', '0', '0'} end
if redis.call('HGET', ik, 'gen') ~= ARGV[3] then return {'stale', '0', '0'} end
if st == 'calling' then
  return {'reconcile', redis.call('HGET', ik, 'tok') or '0', redis.call('HGET', ik, 'intent') or '0'}
end
if st == 'resetting' then return {'verify', '0', '0'} end
if st ~= 'pending' and st ~= 'held' then return {'done', '0', '0'} end
local rs = redis.call('HGET', b .. 'r', 'state')
local w = redis.call('HGET', ik, 'w')
if rs == 'aborted' then
  redis.call('HSET', ik, 'st', 'cancelled', 'done', ARGV[4])
  redis.call('SREM', b .. 'held', ARGV[2])
  for _, ck in ipairs({b .. 'c', b .. 'wc:' .. w}) do
    redis.call('HINCRBY', ck, 'cancelled', 1)
    redis.call('HINCRBY', ck, 'terminal', 1)
  end
  return {'cancelled', '0', '0'}
end
-- A later wave is never called before its gate: tasks of a wave beyond the
-- current one (possible only through manual re-enqueues) are parked too.
if rs ~= 'running' or tonumber(w) > tonumber(redis.call('HGET', b .. 'r', 'wave')) then
  redis.call('HSET', ik, 'st', 'held')
  redis.call('SADD', b .. 'held', ARGV[2])
  return {'held', '0', '0'}
end
local tok = redis.call('INCR', b .. 'fence')
redis.call('HSET', ik, 'st', 'calling', 'tok', tok, 'intent', ARGV[4])
redis.call('HINCRBY', ik, 'tries', 1)
redis.call('HSETNX', ik, 'first', ARGV[4])
return {'proceed', tostring(tok), ARGV[4]}
`)

// calledScript records that the API accepted the reset: calling → resetting.
//
// ARGV[1] key base, ARGV[2] instance, ARGV[3] token, ARGV[4] request ID, ARGV[5] now
// Returns 1, or 0 when the token no longer holds the instance (fenced out).
var calledScript = redis.NewScript(`
local ik = ARGV[1] .. 'i:' .. ARGV[2]
local st = redis.call('HGET', ik, 'st')
if redis.call('HGET', ik, 'tok') ~= ARGV[3] then return 0 end
-- A replay of this very call (same token and request) already succeeded.
if st == 'resetting' and redis.call('HGET', ik, 'rid') == ARGV[4] then return 1 end
if st ~= 'calling' then return 0 end
redis.call('HSET', ik, 'st', 'resetting', 'rid', ARGV[4], 'called', ARGV[5], 'code', '', 'err', '', 'adopted', '')
redis.call('HINCRBY', ik, 'resets', 1)
redis.call('SADD', ARGV[1] .. 'resetting', ARGV[2])
return 1
`)

// adoptScript records that, instead of calling, the worker adopted a
// reinstall the cloud shows running or finished since pre-flight (see
// rollout.BeforeCall): calling → resetting under that operation's request
// ID, to be judged by verification. The reset counter is not incremented:
// no call of this attempt reached the cloud.
//
// ARGV[1] key base, ARGV[2] instance, ARGV[3] token, ARGV[4] request ID
// (” on the legacy API), ARGV[5] now, ARGV[6] why
// Returns 1, or 0 when the token no longer holds the instance (fenced out).
var adoptScript = redis.NewScript(`
local ik = ARGV[1] .. 'i:' .. ARGV[2]
local st = redis.call('HGET', ik, 'st')
if redis.call('HGET', ik, 'tok') ~= ARGV[3] then return 0 end
if st == 'resetting' and redis.call('HGET', ik, 'rid') == ARGV[4] then return 1 end
if st ~= 'calling' then return 0 end
redis.call('HSET', ik, 'st', 'resetting', 'rid', ARGV[4], 'called', ARGV[5], 'code', '', 'err', '', 'adopted', ARGV[6])
redis.call('SADD', ARGV[1] .. 'resetting', ARGV[2])
return 1
`)

// releaseScript undoes an intent whose call certainly did not reach the
// cloud (the API refused it): calling → pending or held.
//
// ARGV[1] key base, ARGV[2] instance, ARGV[3] token, ARGV[4] new state
// (pending|held), ARGV[5] error code, ARGV[6] error message
// Returns 1, or 0 when fenced out.
var releaseScript = redis.NewScript(`
local b = ARGV[1]
local ik = b .. 'i:' .. ARGV[2]
if redis.call('HGET', ik, 'st') ~= 'calling' or redis.call('HGET', ik, 'tok') ~= ARGV[3] then return 0 end
redis.call('HSET', ik, 'st', ARGV[4], 'code', ARGV[5], 'err', ARGV[6])
if ARGV[4] == 'held' then redis.call('SADD', b .. 'held', ARGV[2]) end
return 1
`)

// retakeScript moves an intent to a new token after a reconcile proved the
// old call never landed, so that a slower holder of the old token is fenced out.
//
// ARGV[1] key base, ARGV[2] instance, ARGV[3] old token, ARGV[4] now,
// ARGV[5] a random ID of this retake, so that a replay of the same script
// call (a client retrying a lost reply) returns the token it already issued
// Returns the new token, or 0 when fenced out.
var retakeScript = redis.NewScript(`
local b = ARGV[1]
local ik = b .. 'i:' .. ARGV[2]
if redis.call('HGET', ik, 'st') ~= 'calling' then return 0 end
if redis.call('HGET', ik, 'tok') ~= ARGV[3] then
  if redis.call('HGET', ik, 'rtk') == ARGV[5] then return tonumber(redis.call('HGET', ik, 'tok')) end
  return 0
end
local tok = redis.call('INCR', b .. 'fence')
redis.call('HSET', ik, 'tok', tok, 'intent', ARGV[4], 'rtk', ARGV[5])
redis.call('HINCRBY', ik, 'tries', 1)
return tok
`)

// finishScript moves an instance to a terminal state and counts it once.
//
// ARGV[1] key base, ARGV[2] instance, ARGV[3] comma-separated states it may
// leave, ARGV[4] token that must hold it (” for any), ARGV[5] new state,
// ARGV[6] code, ARGV[7] message, ARGV[8] now, ARGV[9] new image
// Returns {changed, wave, wave counters..., overall counters..., wave size,
// wave complete, total} with counters in the order
// succeeded skipped failed ambiguous cancelled terminal.
var finishScript = redis.NewScript(`
local b = ARGV[1]
local ik = b .. 'i:' .. ARGV[2]
local st = redis.call('HGET', ik, 'st')
local w = redis.call('HGET', ik, 'w')
if not st then return {0} end
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == st then ok = true end end
if ok and ARGV[4] ~= '' and redis.call('HGET', ik, 'tok') ~= ARGV[4] then ok = false end
local changed = 0
local wk = b .. 'wc:' .. w
if ok then
  changed = 1
  redis.call('HSET', ik, 'st', ARGV[5], 'code', ARGV[6], 'err', ARGV[7], 'done', ARGV[8], 'nimg', ARGV[9])
  redis.call('SREM', b .. 'held', ARGV[2])
  redis.call('SREM', b .. 'resetting', ARGV[2])
  for _, ck in ipairs({b .. 'c', wk}) do
    redis.call('HINCRBY', ck, ARGV[5], 1)
    redis.call('HINCRBY', ck, 'terminal', 1)
  end
  local size = tonumber(redis.call('HGET', wk, 'size') or '0')
  if tonumber(redis.call('HGET', wk, 'terminal') or '0') >= size then
    redis.call('HSET', wk, 'complete', '1')
  end
end
local out = {changed, tonumber(w)}
local names = {'succeeded', 'skipped', 'failed', 'ambiguous', 'cancelled', 'terminal'}
for _, ck in ipairs({wk, b .. 'c'}) do
  local vals = redis.call('HMGET', ck, unpack(names))
  for i = 1, #names do table.insert(out, tonumber(vals[i] or '0') or 0) end
end
table.insert(out, tonumber(redis.call('HGET', wk, 'size') or '0'))
table.insert(out, redis.call('HGET', wk, 'complete') == '1' and 1 or 0)
table.insert(out, tonumber(redis.call('HGET', b .. 'r', 'total') or '0'))
return out
`)

// setStateScript changes the rollout state when it is one of a set.
//
// ARGV[1] key base, ARGV[2] comma-separated states it may leave ('*' any
// non-terminal), ARGV[3] new state, ARGV[4] reason, ARGV[5] now
// Returns the previous state when it changed, or ” when it did not.
var setStateScript = redis.NewScript(`
local rk = ARGV[1] .. 'r'
local st = redis.call('HGET', rk, 'state')
if not st then return '' end
local ok = false
if ARGV[2] == '*' then
  ok = st ~= 'completed' and st ~= 'aborted'
else
  for s in string.gmatch(ARGV[2], '[^,]+') do if s == st then ok = true end end
end
if not ok then return '' end
redis.call('HSET', rk, 'state', ARGV[3], 'reason', ARGV[4], 'updated', ARGV[5])
return st
`)

// advanceScript passes the gate of wave k.
//
// ARGV[1] key base, ARGV[2] k, ARGV[3] approval required (0|1),
// ARGV[4] window open (0|1), ARGV[5] last wave (0|1), ARGV[6] now
// Returns {outcome, current wave, state}: outcome is one of
// blocked (rollout not running) | stale (current wave is not k) |
// incomplete | awaiting | window | completed | started (current wave is now k+1).
var advanceScript = redis.NewScript(`
local b = ARGV[1]
local rk = b .. 'r'
local st = redis.call('HGET', rk, 'state')
local cur = tonumber(redis.call('HGET', rk, 'wave') or '-1')
local k = tonumber(ARGV[2])
if st ~= 'running' then return {'blocked', cur, st or ''} end
if cur ~= k then return {'stale', cur, st} end
local wk = b .. 'wc:' .. k
if redis.call('HGET', wk, 'complete') ~= '1' then return {'incomplete', cur, st} end
if ARGV[5] == '1' then
  -- Retried instances of earlier waves must finish too.
  local term = tonumber(redis.call('HGET', b .. 'c', 'terminal') or '0')
  if term < tonumber(redis.call('HGET', rk, 'total') or '0') then return {'incomplete', cur, st} end
end
if ARGV[3] == '1' and redis.call('HGET', wk, 'approved') ~= '1' then
  redis.call('HSET', rk, 'state', 'awaiting_approval', 'reason', 'wave ' .. (k + 2) .. ' awaits approval', 'updated', ARGV[6])
  return {'awaiting', cur, 'awaiting_approval'}
end
if ARGV[4] ~= '1' then return {'window', cur, st} end
if ARGV[5] == '1' then
  redis.call('HSET', rk, 'state', 'completed', 'reason', '', 'updated', ARGV[6])
  return {'completed', cur, 'completed'}
end
redis.call('HSET', rk, 'wave', k + 1, 'updated', ARGV[6])
redis.call('HSET', b .. 'wc:' .. (k + 1), 'started', ARGV[6])
return {'started', k + 1, st}
`)

// resumeScript sets a paused (or approval-waiting) rollout running again and
// returns the parked instances with their new generation.
//
// ARGV[1] key base, ARGV[2] comma-separated states it may leave, ARGV[3] now,
// ARGV[4] 1 to also mark the current wave approved
// Returns {prev state (” if unchanged), seq, wave, id1, gen1, w1, id2, ...}.
var resumeScript = redis.NewScript(`
local b = ARGV[1]
local rk = b .. 'r'
local st = redis.call('HGET', rk, 'state')
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == st then ok = true end end
if not ok then return {''} end
local cur = redis.call('HGET', rk, 'wave')
if ARGV[4] == '1' then redis.call('HSET', b .. 'wc:' .. cur, 'approved', '1') end
redis.call('HSET', rk, 'state', 'running', 'reason', '', 'updated', ARGV[3])
local seq = redis.call('HINCRBY', rk, 'seq', 1)
local out = {st, seq, tonumber(cur)}
for _, id in ipairs(redis.call('SMEMBERS', b .. 'held')) do
  local ik = b .. 'i:' .. id
  if redis.call('HGET', ik, 'st') == 'held' then
    redis.call('HSET', ik, 'st', 'pending')
    local gen = redis.call('HINCRBY', ik, 'gen', 1)
    table.insert(out, id)
    table.insert(out, gen)
    table.insert(out, tonumber(redis.call('HGET', ik, 'w')))
  end
end
redis.call('DEL', b .. 'held')
return out
`)

// abortScript aborts a rollout: every instance not yet called (pending or
// parked, in any wave) is cancelled at once; calls in flight finish.
//
// ARGV[1] key base, ARGV[2] reason, ARGV[3] now
// Returns the previous state, or ” when the rollout was already terminal.
var abortScript = redis.NewScript(`
local b = ARGV[1]
local rk = b .. 'r'
local st = redis.call('HGET', rk, 'state')
if not st or st == 'completed' or st == 'aborted' then return '' end
redis.call('HSET', rk, 'state', 'aborted', 'reason', ARGV[2], 'updated', ARGV[3])
local waves = tonumber(redis.call('HGET', rk, 'waves') or '0')
for k = 0, waves - 1 do
  for _, id in ipairs(redis.call('LRANGE', b .. 'w:' .. k, 0, -1)) do
    local ik = b .. 'i:' .. id
    local s = redis.call('HGET', ik, 'st')
    if s == 'pending' or s == 'held' then
      redis.call('HSET', ik, 'st', 'cancelled', 'done', ARGV[3])
      for _, ck in ipairs({b .. 'c', b .. 'wc:' .. k}) do
        redis.call('HINCRBY', ck, 'cancelled', 1)
        redis.call('HINCRBY', ck, 'terminal', 1)
      end
    end
  end
end
redis.call('DEL', b .. 'held')
return st
`)

// retryFailedScript gives every failed instance a new attempt: failed →
// pending with a new generation, counters reduced, rollout running again.
//
// ARGV[1] key base, ARGV[2] now, ARGV[3] 1 to include ambiguous instances
// Returns {seq, wave, id1, gen1, w1, ...}, or {} when the rollout is aborted.
var retryFailedScript = redis.NewScript(`
local b = ARGV[1]
local rk = b .. 'r'
local st = redis.call('HGET', rk, 'state')
if not st or st == 'aborted' then return {} end
local out = {}
local total = tonumber(redis.call('HGET', rk, 'waves') or '0')
for k = 0, total - 1 do
  for _, id in ipairs(redis.call('LRANGE', b .. 'w:' .. k, 0, -1)) do
    local ik = b .. 'i:' .. id
    local s = redis.call('HGET', ik, 'st')
    if s == 'failed' or (ARGV[3] == '1' and s == 'ambiguous') then
      redis.call('HSET', ik, 'st', 'pending', 'tries', 0, 'code', '', 'err', '', 'done', '')
      redis.call('HDEL', ik, 'first')
      local gen = redis.call('HINCRBY', ik, 'gen', 1)
      for _, ck in ipairs({b .. 'c', b .. 'wc:' .. k}) do
        redis.call('HINCRBY', ck, s, -1)
        redis.call('HINCRBY', ck, 'terminal', -1)
      end
      redis.call('HSET', b .. 'wc:' .. k, 'complete', '0')
      table.insert(out, id)
      table.insert(out, gen)
      table.insert(out, k)
    end
  end
end
if #out == 0 then return {0, tonumber(redis.call('HGET', rk, 'wave'))} end
redis.call('HINCRBY', rk, 'attempt', 1)
redis.call('HSET', rk, 'state', 'running', 'reason', '', 'updated', ARGV[2])
local seq = redis.call('HINCRBY', rk, 'seq', 1)
local res = {seq, tonumber(redis.call('HGET', rk, 'wave'))}
for _, v in ipairs(out) do table.insert(res, v) end
return res
`)

// claimScript claims instances for a rollout, all or nothing. A claim
// whose owner finished (completed, aborted) or no longer exists is free:
// a rollout that died without releasing its claims blocks nothing.
//
// KEYS claim keys (one per instance), ARGV[1] rollout ID, ARGV[2] key
// prefix (the owner's record is ARGV[2] .. '{' .. owner .. '}:r')
// Returns {} when every key is now ours, else {key1, owner1, ...} of the
// keys other active rollouts hold (and nothing was claimed).
var claimScript = redis.NewScript(`
local clash = {}
local live = {}
local function active(owner)
  if live[owner] == nil then
    local st = redis.call('HGET', ARGV[2] .. '{' .. owner .. '}:r', 'state')
    live[owner] = st ~= false and st ~= 'completed' and st ~= 'aborted'
  end
  return live[owner]
end
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v and v ~= ARGV[1] and active(v) then
    table.insert(clash, k)
    table.insert(clash, v)
    if #clash >= 20 then break end
  end
end
if #clash > 0 then return clash end
for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1]) end
return {}
`)

// unclaimScript releases claims that a rollout holds.
//
// KEYS claim keys, ARGV[1] rollout ID. Returns how many were released.
var unclaimScript = redis.NewScript(`
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k); n = n + 1 end
end
return n
`)
