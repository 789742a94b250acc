-- Random image requests with valid proofs, from the requests file (written by
-- run.mjs). Second argument "1": send each image's current token (Success),
-- else none (Updated). Prints one RESULT line; non-2xx answers count as errors.
local requests = {}

function init(args)
  local list = dofile(args[1])
  local match = args[2] == "1"
  for i, r in ipairs(list) do
    local headers = { ["x-pixstore-proof"] = r.proof, ["Host"] = "127.0.0.1" }
    if match then headers["x-pixstore-token"] = r.token end
    requests[i] = wrk.format("GET", r.path, headers)
  end
  math.randomseed(12345)
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests_)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %f %f %d\n", summary.requests, summary.bytes, latency:percentile(50), latency:percentile(99), bad))
end
