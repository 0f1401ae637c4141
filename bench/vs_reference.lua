-- wrk script of bench/vs_reference.py: one operation on /voice/sessions, chosen by the environment.
--
--   BENCH_OPERATION  create | get | end
--   BENCH_TOKEN      sent as "Authorization: Token <it>" when set (voiceagent; the reference has no auth)
--   BENCH_RUN_TAG    makes create's customer ids unique across runs
--   BENCH_IDS_FILE   get/end: the session ids to pick from at random, one a line
--
-- done() (bench/wrk_common.lua) prints one line "BENCH_RESULT {json}" with the counts and latency percentiles.

local operation = os.getenv("BENCH_OPERATION") or "get"
local run_tag = os.getenv("BENCH_RUN_TAG") or "run"
local headers = { ["Content-Type"] = "application/json" }
local token = os.getenv("BENCH_TOKEN") or ""
if token ~= "" then
    headers["Authorization"] = "Token " .. token
end

dofile(assert(os.getenv("BENCH_WRK_COMMON"), "run this script through bench.common.run_wrk"))  -- setup(), done()

local ids = {}
local sent = 0
local end_body = '{"reason": "user"}'

function init(args)
    -- thread_number is set by setup() in this thread's own Lua state before init runs.
    math.randomseed(os.time() * 1000 + (thread_number or 0))
    if operation ~= "create" then
        local file = assert(io.open(assert(os.getenv("BENCH_IDS_FILE"), "BENCH_IDS_FILE is not set"), "r"))
        for line in file:lines() do
            if line ~= "" then
                ids[#ids + 1] = line
            end
        end
        file:close()
        assert(#ids > 0, "no session ids to " .. operation)
    end
end

function request()
    if operation == "create" then
        sent = sent + 1
        local body = string.format(
            '{"customer_id": "bench-%s-%d-%d", "direction": "inbound", "locale": "en-US", "simulation": true}',
            run_tag, thread_number or 0, sent
        )
        return wrk.format("POST", "/voice/sessions", headers, body)
    end
    local id = ids[math.random(#ids)]
    if operation == "end" then
        return wrk.format("PUT", "/voice/sessions/" .. id .. "/end", headers, end_body)
    end
    return wrk.format("GET", "/voice/sessions/" .. id, headers)
end
