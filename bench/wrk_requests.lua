-- wrk script of bench/webhooks.py: sends the prepared requests of the file named by
-- BENCH_REQUESTS in order, each once, and prints a JSON summary line at the end.
local list = dofile(os.getenv("BENCH_REQUESTS"))
local sent = 0
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

request = function()
  sent = sent + 1
  local item = list[((sent - 1) % #list) + 1]
  headers["X-Twilio-Signature"] = item[3]
  return wrk.format("POST", item[1], headers, item[2])
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "wrapped": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    tostring(summary.requests > #list)))
end
