//! The Lua scripts: each state change is one atomic script. Times come from Redis `TIME` (milliseconds), so
//! every worker agrees on "now" whatever its own clock says.

/// KEYS: main, delayed, jobs, wake. ARGV: id, envelope, delay ms. Returns 1 when stored, 0 for a duplicate id.
pub const ENQUEUE: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then return 0 end
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 0)
end
return 1
";

/// KEYS: main, processing, jobs, attempts. ARGV: visibility ms, most jobs to claim.
/// Returns a flat list {id, envelope, attempts, id, envelope, attempts, …}, empty when nothing is ready; each
/// attempt is counted here.
pub const CLAIM: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {}
local want = tonumber(ARGV[2])
while #out < want * 3 do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  local envelope = redis.call('HGET', KEYS[3], id)
  -- An id without an envelope was dropped meanwhile: skip it.
  if envelope then
    local attempts = redis.call('HINCRBY', KEYS[4], id, 1)
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
    out[#out + 1] = id
    out[#out + 1] = envelope
    out[#out + 1] = attempts
  end
end
return out
";

/// KEYS: processing, jobs, attempts, errors, counters. ARGV: id, attempt (the claim's token). Returns 1, or 0 when
/// this claim no longer holds the job (it was reaped and claimed again, or already finished).
pub const ACK: &str = r"
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'succeeded', 1)
return 1
";

/// KEYS: processing, delayed, failed, attempts, errors, counters. ARGV: id, error, permanent (0/1), max attempts, delay ms,
/// attempt (the claim's token). Returns -1 when this claim no longer holds the job, 0 when moved to failed, else
/// the retry delay in ms.
pub const NACK: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[6] then return -1 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
local attempts = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if ARGV[3] == '1' or attempts >= tonumber(ARGV[4]) then
  redis.call('LPUSH', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[6], 'failed', 1)
  return 0
end
local delay = math.max(1, tonumber(ARGV[5]))
redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
redis.call('HINCRBY', KEYS[6], 'retried', 1)
return delay
";

/// KEYS: processing, main, failed, attempts, errors, wake, counters. ARGV: max attempts, batch.
/// Returns {returned, failed}: claimed jobs past their deadline go back to the front of the queue, or to failed.
pub const REAP: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local returned, failed = 0, 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local attempts = tonumber(redis.call('HGET', KEYS[4], id) or '0')
  if attempts >= tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[5], id, 'visibility timeout expired on the last attempt (' .. attempts .. ')')
    redis.call('LPUSH', KEYS[3], id)
    failed = failed + 1
  else
    redis.call('RPUSH', KEYS[2], id)
    returned = returned + 1
  end
end
if returned > 0 then
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 0)
end
if returned + failed > 0 then
  redis.call('HINCRBY', KEYS[7], 'reaped', returned + failed)
  if failed > 0 then redis.call('HINCRBY', KEYS[7], 'failed', failed) end
end
return {returned, failed}
";

/// KEYS: delayed, main, wake. ARGV: batch. Returns how many due jobs became ready.
pub const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
if #ids > 0 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return #ids
";

/// KEYS: failed, main, attempts, errors, wake. ARGV: id. Returns 1 when requeued (with its attempts reset).
pub const REQUEUE: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 0)
return 1
";

/// KEYS: failed, jobs, attempts, errors. ARGV: id. Returns 1 when a failed job was dropped.
pub const DROP_FAILED: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
";

/// KEYS: processing, main, attempts, wake. ARGV: id, attempt (the claim's token).
/// Gives back a claimed job that never started (shutdown): to the front of the queue, its attempt not counted.
pub const RELEASE: &str = r"
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
return 1
";
