"""The Lua that makes the Redis leaderboard atomic: one script call per apply, run by Redis alone.

Layout (every key starts with the configured prefix, empty by default, so the set is the seed's
`leaderboard`):

- `leaderboard` — sorted set, member = user id, member score = the user's score. Redis orders equal
  member scores by member bytes, which is not our tie-break, so ties are resolved through:
- `leaderboard:ties:<score>` — one sorted set per distinct score, member = user id, member score =
  when that score was reached (microseconds since 1970). Equal times fall back to the user id, as in
  the database. Walking distinct scores from the top and, within each, the tie set in order gives
  exactly the database's `ORDER BY score DESC, score_reached_at ASC, user_id ASC`.
- `leaderboard:scores` / `leaderboard:names` — hashes: the exact decimal score and the display name.
- `leaderboard:removed` — hash: user id -> when they left the board (microseconds; a ban or a score
  corrected to 0), so a late replay of an older score does not bring them back. Cleared by a rebuild.
- `leaderboard:meta` — hash: `epoch`, `seq`, `top` (the last published top 10, to detect changes) and
  `body` (the prepared JSON of GET /api/leaderboard for the top 10).

Member scores are doubles: ranking is exact for scores up to 2**53 (about 9e15); the exact 64-bit
score is kept in `leaderboard:scores` and is what every answer shows.
"""

from __future__ import annotations

COMMON = r"""
local P = KEYS[1]
local BOARD, SCORES, NAMES, META = P..'leaderboard', P..'leaderboard:scores', P..'leaderboard:names', P..'leaderboard:meta'
local REMOVED = P..'leaderboard:removed'

local function ties(score) return P..'leaderboard:ties:'..score end

local function top(n)
  local out = {}
  local cursor = '+inf'
  while #out < n do
    local head = redis.call('ZREVRANGEBYSCORE', BOARD, cursor, '-inf', 'LIMIT', 0, 1)
    if #head == 0 then break end
    local score = redis.call('HGET', SCORES, head[1])
    local tied = redis.call('ZRANGE', ties(score), 0, n - #out - 1)
    for _, user in ipairs(tied) do
      out[#out + 1] = {user, score, redis.call('HGET', NAMES, user)}
    end
    cursor = '(' .. redis.call('ZSCORE', BOARD, head[1])
  end
  return out
end

local function rank(user)
  local score = redis.call('HGET', SCORES, user)
  if not score then return false end
  local ahead = redis.call('ZCOUNT', BOARD, '(' .. redis.call('ZSCORE', BOARD, user), '+inf')
  return ahead + redis.call('ZRANK', ties(score), user) + 1
end

local function entries_json(entries)
  local parts = {}
  for i, e in ipairs(entries) do
    parts[i] = '{"rank":' .. i .. ',"user_id":' .. cjson.encode(e[1]) .. ',"display_name":' ..
      cjson.encode(e[3]) .. ',"score":' .. e[2] .. '}'
  end
  return '[' .. table.concat(parts, ',') .. ']'
end
"""

# KEYS[1] prefix. ARGV: user, score (decimal), reached_us, display name, channel ('' = no publish),
# top size. Returns {rank or false, published message or false}; or an error reply 'NOEPOCH' when
# the cache is missing (Redis restarted empty, or a rebuild is under way).
APPLY = (
    COMMON
    + r"""
local epoch = redis.call('HGET', META, 'epoch')
if not epoch then return redis.error_reply('NOEPOCH the leaderboard cache is missing') end
local user, score, reached, name, channel, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])

local old = redis.call('HGET', SCORES, user)
local stale = false
local gone = false
if old then
  local old_reached = redis.call('ZSCORE', ties(old), user)
  stale = old_reached and tonumber(old_reached) >= tonumber(reached)
else
  -- Not on the board: if they were removed, only an entry newer than the removal returns them.
  gone = redis.call('HGET', REMOVED, user)
  stale = gone and tonumber(gone) >= tonumber(reached)
end
if not stale then
  if old then redis.call('ZREM', ties(old), user) end
  if score == '0' then
    redis.call('ZREM', BOARD, user)
    redis.call('HDEL', SCORES, user)
    redis.call('HDEL', NAMES, user)
    redis.call('HSET', REMOVED, user, reached)
  else
    if gone then redis.call('HDEL', REMOVED, user) end
    redis.call('ZADD', BOARD, score, user)
    redis.call('ZADD', ties(score), reached, user)
    redis.call('HSET', SCORES, user, score)
    redis.call('HSET', NAMES, user, name)
  end
end

local now_top = top(n)
local encoded = cjson.encode(now_top)
if encoded == redis.call('HGET', META, 'top') then return {rank(user), false} end
local seq = redis.call('HINCRBY', META, 'seq', 1)
local entries = entries_json(now_top)
local message = '{"type":"update","channel":"scoreboard_updates","epoch":' .. epoch .. ',"seq":' .. seq ..
  ',"top":' .. entries .. '}'
redis.call('HSET', META, 'top', encoded, 'body', '{"epoch":' .. epoch .. ',"seq":' .. seq .. ',"entries":' .. entries .. '}')
if channel ~= '' then redis.call('PUBLISH', channel, message) end
return {rank(user), message}
"""
)

# KEYS[1] prefix. ARGV: limit. Returns {epoch, seq, entries json} or an error when missing.
BOARD = (
    COMMON
    + r"""
local meta = redis.call('HMGET', META, 'epoch', 'seq')
if not meta[1] then return redis.error_reply('NOEPOCH the leaderboard cache is missing') end
return {meta[1], meta[2], entries_json(top(tonumber(ARGV[1])))}
"""
)

# KEYS[1] prefix. ARGV: user. Returns {rank, score, name} or false.
STANDING = (
    COMMON
    + r"""
if redis.call('HEXISTS', META, 'epoch') == 0 then return redis.error_reply('NOEPOCH the leaderboard cache is missing') end
local r = rank(ARGV[1])
if not r then return false end
return {r, redis.call('HGET', SCORES, ARGV[1]), redis.call('HGET', NAMES, ARGV[1])}
"""
)

# KEYS[1] prefix. ARGV: epoch, top size. Called after a bulk load: sets the new epoch at seq 0 and
# records the current top as published. Returns the snapshot message parts {entries json}.
SEAL = (
    COMMON
    + r"""
local now_top = top(tonumber(ARGV[2]))
local entries = entries_json(now_top)
redis.call('HSET', META, 'epoch', ARGV[1], 'seq', 0, 'top', cjson.encode(now_top),
  'body', '{"epoch":' .. ARGV[1] .. ',"seq":0,"entries":' .. entries .. '}')
return entries
"""
)
