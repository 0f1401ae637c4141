-- wrk script of bench/conversation_init.py: ElevenLabs asking about inbound calls, one call sid each.
--
--   BENCH_TOKEN      sent as "Authorization: Bearer <it>" (ELEVENLABS_TOOLS_TOKEN)
--   BENCH_AGENT_ID   the agent that answers
--   BENCH_RUN_TAG    makes call sids unique across runs
--   BENCH_CALLERS    how many distinct callers ring (caller numbers repeat, call sids never do)
--
-- done() prints one line "BENCH_RESULT {json}" with the counts and latency percentiles (microseconds).

local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set"),
}
local agent_id = os.getenv("BENCH_AGENT_ID") or "agent_bench_support"
local run_tag = os.getenv("BENCH_RUN_TAG") or "run"
local callers = tonumber(os.getenv("BENCH_CALLERS") or "1000")

local thread_count = 0
function setup(thread)
    thread_count = thread_count + 1
    thread:set("thread_number", thread_count)
end

local sent = 0

function request()
    sent = sent + 1
    local body = string.format(
        '{"caller_id": "+1555%07d", "agent_id": "%s", "called_number": "+15550100000", "call_sid": "CA%s%d%012d"}',
        (sent * 7919 + (thread_number or 0)) % callers, agent_id, run_tag, thread_number or 0, sent
    )
    return wrk.format("POST", "/elevenlabs/conversation-init", headers, body)
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
