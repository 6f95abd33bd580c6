-- wrk script for scripts/bench-intake.sh: POSTs Docker distribution notification envelopes of
-- BENCH_INTAKE_EVENTS manifest pushes (default 1) with fresh event IDs, so every event is recorded and
-- none is a duplicate. Digests cycle over 100 values, as repeated pushes of a fleet of images would.
-- When done, prints one line (events and requests answered with a 2xx/3xx; latencies of every completed
-- response, as wrk measures them; errors: failed connections, reads, writes, time-outs and 4xx/5xx answers):
--   <events/s> <requests/s> <p50 ms> <p90 ms> <p99 ms> <max ms> <requests> <errors>
local events_per_request = tonumber(os.getenv("BENCH_INTAKE_EVENTS") or "1")
local host = os.getenv("BENCH_INTAKE_HOST") or "bench.example.com"
local run = os.getenv("BENCH_INTAKE_RUN") or "run"
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  sequence = 0
  prefix = run .. "-" .. tostring(thread_id) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/vnd.docker.distribution.events.v1+json"
end

local function event()
  sequence = sequence + 1
  local number = sequence % 100
  local digest = string.format("%064d", number)
  return '{"id":"' .. prefix .. sequence .. '","timestamp":"2024-05-01T10:00:00Z","action":"push","target":'
    .. '{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":"sha256:' .. digest
    .. '","length":528,"repository":"bench/app","tag":"v' .. number .. '"},"request":{"id":"r","addr":"10.0.0.1:5000",'
    .. '"host":"' .. host .. '","method":"PUT","useragent":"bench"},"actor":{"name":"bench"},"source":{"addr":"registry:5000"}}'
end

function request()
  local body = {}
  for i = 1, events_per_request do body[i] = event() end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(body, ",") .. ']}')
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  -- summary.requests counts completed responses, whatever their status; connect, read, write and timeout
  -- errors are requests that never completed.
  local failed = errors.connect + errors.read + errors.write + errors.timeout + errors.status
  local answered = summary.requests - errors.status
  io.write(string.format("%.0f %.0f %.2f %.2f %.2f %.2f %d %d\n",
    answered * events_per_request / seconds, answered / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests, failed))
end
