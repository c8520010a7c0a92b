-- wrk script of the benchmark suite: one fixed request, and a JSON summary at the end.
-- Configured through the environment, so one script serves every scenario:
--   BENCH_METHOD (GET), BENCH_BODY (a JSON body, sent as application/json), BENCH_KEY (bearer),
--   BENCH_DELAY_MS (below)
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- BENCH_DELAY_MS paces each connection (a pause before each request, not counted in the
-- latency): the floor is sent at the gateway's request rate, not flat out.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
-- BENCH_STAGGER_MS spreads the first request of each of this thread's BENCH_FIRSTS
-- connections evenly over that time: wrk opens every connection at once, and 300 clients
-- released together, each answered after the same fixed upstream latency, would stay in
-- lockstep, arriving as one burst per round trip. wrk asks delay() before every request,
-- a connection's first one included.
local stagger = tonumber(os.getenv("BENCH_STAGGER_MS") or "0")
local firsts = tonumber(os.getenv("BENCH_FIRSTS") or "0")
local started = 0
if pause > 0 or stagger > 0 then
  function delay()
    if started < firsts and stagger > 0 then
      started = started + 1
      return math.floor(stagger * (started - 1) / firsts)
    end
    return pause
  end
end

-- Latency in microseconds; wrk keeps a full histogram, so tails are exact.
function done(summary, latency, requests)
  local e = summary.errors
  io.write("BENCH_JSON {")
  io.write(string.format('"requests":%d,"duration_us":%d,"bytes":%d,',
    summary.requests, summary.duration, summary.bytes))
  io.write(string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},',
    e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format('"latency_us":{"min":%d,"max":%d,"mean":%.1f',
    latency.min, latency.max, latency.mean))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format(',"p%s":%d', tostring(p), latency:percentile(p)))
  end
  io.write("}}\n")
end
