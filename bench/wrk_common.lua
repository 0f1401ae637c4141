-- What every wrk script of bench/ shares, loaded with dofile by each (bench.common.run_wrk names this
-- file in BENCH_WRK_COMMON): setup() numbers the threads (thread_number, for unique ids and seeds), and
-- done() prints one line "BENCH_RESULT {json}" with the counts and latency percentiles (microseconds),
-- so the caller parses numbers rather than wrk's human-readable summary.

local thread_count = 0
function setup(thread)
    thread_count = thread_count + 1
    thread:set("thread_number", thread_count)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "connect": %d, "read": %d, '
            .. '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.max
    ))
end
