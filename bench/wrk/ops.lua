-- wrk script for bench/core.py: one API operation per run, chosen by the script arguments.
--   wrk -t1 -c32 -d8s --latency -s bench/wrk/ops.lua http://127.0.0.1:PORT -- OP IDS_FILE LIMIT [LIST_IDS_FILE]
-- OP: create_thread | retrieve_thread | create_message | list_messages | mixed
-- mixed (bench/mixed.py): 40 % retrieve_thread, 25 % create_message, 25 % list_messages and 10 %
-- create_thread, in a fixed cycle of 20 so that every second of the run has the same mix; its lists go
-- to the threads of LIST_IDS_FILE (a big thread, as list_messages in core.py), the rest to IDS_FILE.
-- IDS_FILE: thread ids, one a line; each request takes the next one (round robin), so reads and
-- writes spread over many rows instead of hammering one.
-- done() prints one machine-readable line, "WRK_JSON {...}", that core.py parses.

local op, limit = "create_thread", "20"
local ids, counter = {}, 0
local list_ids, list_counter, mix_counter = {}, 0, 0
-- R retrieve, M create message, L list, C create thread: 8, 5, 5 and 2 of 20, spread out.
local MIX = { "R", "M", "L", "R", "C", "R", "M", "L", "R", "M", "L", "R", "M", "L", "R", "C", "R", "M", "L", "R" }
local json_headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-bench" }
local get_headers = { ["Authorization"] = "Bearer sk-bench" }
local thread_body = '{"metadata":{"source":"wrk"}}'
local message_body = '{"role":"user","content":"Hello from wrk: a short benchmark message of ordinary length."}'

function init(args)
  op = args[1] or op
  if args[2] and args[2] ~= "" then
    for line in io.lines(args[2]) do
      if line ~= "" then ids[#ids + 1] = line end
    end
  end
  limit = args[3] or limit
  if args[4] and args[4] ~= "" then
    for line in io.lines(args[4]) do
      if line ~= "" then list_ids[#list_ids + 1] = line end
    end
  end
end

local function next_id()
  counter = counter + 1
  return ids[(counter % #ids) + 1]
end

local function next_list_id()
  list_counter = list_counter + 1
  return list_ids[(list_counter % #list_ids) + 1]
end

local function mixed()
  mix_counter = mix_counter + 1
  local kind = MIX[(mix_counter % #MIX) + 1]
  if kind == "R" then
    return wrk.format("GET", "/v1/threads/" .. next_id(), get_headers)
  elseif kind == "M" then
    return wrk.format("POST", "/v1/threads/" .. next_id() .. "/messages", json_headers, message_body)
  elseif kind == "L" then
    return wrk.format("GET", "/v1/threads/" .. next_list_id() .. "/messages?limit=" .. limit, get_headers)
  end
  return wrk.format("POST", "/v1/threads", json_headers, thread_body)
end

function request()
  if op == "mixed" then
    return mixed()
  elseif op == "create_thread" then
    return wrk.format("POST", "/v1/threads", json_headers, thread_body)
  elseif op == "retrieve_thread" then
    return wrk.format("GET", "/v1/threads/" .. next_id(), get_headers)
  elseif op == "create_message" then
    return wrk.format("POST", "/v1/threads/" .. next_id() .. "/messages", json_headers, message_body)
  elseif op == "list_messages" then
    return wrk.format("GET", "/v1/threads/" .. next_id() .. "/messages?limit=" .. limit, get_headers)
  end
  error("unknown operation: " .. tostring(op))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors_status":%d,"errors_socket":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
