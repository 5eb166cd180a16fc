-- wrk script of the HTTP benchmark (benchmarks/bench_http.py): POST a QuestionnaireResponse.
--   wrk -tTHREADS -s benchmarks/post_response.lua URL -- TEMPLATE POOL LABEL THREADS
-- TEMPLATE is the response's JSON with __ID__, __PATIENT__ and __AUTHORED__ in place of its
-- identifier value, subject id and authored time. Request n (numbered across wrk's threads)
-- gets identifier LABEL-n, patient bench-(n mod POOL) and authored 2020-01-01 + n minutes,
-- exactly as benchmarks/load.py's body() does. done() prints one JSON line for the benchmark.

local threads = {}
local counter = 0
local next_thread = 0
local template, pool, label, stride -- and the global tid, set by setup()

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  template = file:read("*a")
  file:close()
  pool = tonumber(args[2])
  label = args[3]
  stride = tonumber(args[4]) -- wrk's thread count: request numbers n never collide
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/fhir+json"
end

function request()
  local n = counter * stride + tid
  counter = counter + 1
  local body = template
    :gsub("__ID__", label .. "-" .. n)
    :gsub("__PATIENT__", "bench-" .. (n % pool))
    :gsub("__AUTHORED__", os.date("!%Y-%m-%dT%H:%M:%SZ", 1577836800 + 60 * n))
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
