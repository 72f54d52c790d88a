-- wrk script for bench/score_updates.py: redeem pre-issued action tickets, one per request.
--
-- Arguments (after `--`): <requests file> <threads> <max seconds>
-- Each line of the requests file is "<access token> <JSON body>"; thread i of n takes lines i, i+n, ...
-- wrk asks delay() before every request, a connection's first one included: a connection sends at once
-- (delay 0) while tickets and time remain, and is parked otherwise, so no ticket is sent twice and nothing is sent that is not
-- a score update. When a thread has nothing in flight and nothing left to send it writes
-- "score_updates.lua: thread done" to stderr; the Python side then stops wrk with SIGINT.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local PARK_MS = 3600 * 1000
local timespec = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

-- main state ------------------------------------------------------------------------------------

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

-- thread state ----------------------------------------------------------------------------------

function init(args)
  local path, nthreads, max_seconds = args[1], tonumber(args[2]), tonumber(args[3])
  requests, sent, granted, received, ok, statuses, reported = {}, 0, 0, 0, 0, {}, false
  local line_no = 0
  for line in io.lines(path) do
    if line_no % nthreads == index then
      local token, body = line:match("^(%S+) (.+)$")
      local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
      requests[#requests + 1] = wrk.format("POST", "/api/score/update", headers, body)
    end
    line_no = line_no + 1
  end
  limit = max_seconds
end

function delay()
  deadline = deadline or now() + limit
  if granted < #requests and now() < deadline then
    granted = granted + 1
    return 0
  end
  return PARK_MS
end

function request()
  if granted == 0 then
    return requests[1] -- wrk's check of the script before the run: this one is never sent
  end
  sent = sent + 1 -- each call follows one grant of delay(), so sent <= granted <= #requests
  started = started or now()
  return requests[sent]
end

function response(status, headers, body)
  received = received + 1
  finished = now()
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    ok = ok + 1
  end
  if not reported and received == sent and (sent >= #requests or finished >= deadline) then
    reported = true
    io.stderr:write("score_updates.lua: thread done\n")
    io.stderr:flush()
  end
end

-- main state, after the run ---------------------------------------------------------------------

function done(summary, latency, _)
  local total = { ok = 0, sent = 0, received = 0 }
  local first, last, codes = math.huge, 0, {}
  for _, thread in ipairs(threads) do
    for key in pairs(total) do
      total[key] = total[key] + (thread:get(key) or 0)
    end
    first = math.min(first, thread:get("started") or math.huge)
    last = math.max(last, thread:get("finished") or 0)
    for code, n in pairs(thread:get("statuses") or {}) do
      codes[code] = (codes[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', code, n)
  end
  local errors = summary.errors
  io.write(string.format(
    'score_updates.lua: {"ok": %d, "sent": %d, "received": %d, "elapsed_s": %.6f, "p50_us": %d, "p99_us": %d,'
      .. ' "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "statuses": {%s}}\n',
    total.ok, total.sent, total.received, last > first and last - first or 0,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.timeout, table.concat(parts, ", ")
  ))
end
