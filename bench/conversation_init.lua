-- wrk script of bench/conversation_init.py: ElevenLabs asking about inbound calls, one call sid each.
--
--   BENCH_TOKEN      sent as "Authorization: Bearer <it>" (ELEVENLABS_TOOLS_TOKEN)
--   BENCH_AGENT_ID   the agent that answers
--   BENCH_RUN_TAG    makes call sids unique across runs
--   BENCH_CALLERS    how many distinct callers ring (caller numbers repeat, call sids never do)
--
-- done() (bench/wrk_common.lua) prints one line "BENCH_RESULT {json}" with the counts and latency percentiles.

local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set"),
}
local agent_id = os.getenv("BENCH_AGENT_ID") or "agent_bench_support"
local run_tag = os.getenv("BENCH_RUN_TAG") or "run"
local callers = tonumber(os.getenv("BENCH_CALLERS") or "1000")

dofile(assert(os.getenv("BENCH_WRK_COMMON"), "run this script through bench.common.run_wrk"))  -- setup(), done()

local sent = 0

function request()
    sent = sent + 1
    local body = string.format(
        '{"caller_id": "+1555%07d", "agent_id": "%s", "called_number": "+15550100000", "call_sid": "CA%s%d%012d"}',
        (sent * 7919 + (thread_number or 0)) % callers, agent_id, run_tag, thread_number or 0, sent
    )
    return wrk.format("POST", "/elevenlabs/conversation-init", headers, body)
end
