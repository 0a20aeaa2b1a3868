-- join.lua: POST /queue/api/join without a ticket: every request takes a new place in line,
-- each from its own visitor address in X-Forwarded-For (a header value only, as the gate
-- sees it behind its proxy; no packet goes there): one IPv6 /64 each from 2001:db8::/32,
-- the documentation prefix, as bench.procs.visitor_address numbers them.
-- Usage: wrk ... -s join.lua URL -- FIRST_VISITOR_NUMBER
local report = dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local n = 0

function init(args)
  n = tonumber(args[1]) or 0
end

function request()
  n = n + 1
  local address = string.format("2001:db8:%x:%x::1", math.floor(n / 65536) % 65536, n % 65536)
  return wrk.format("POST", "/queue/api/join",
                    { ["Accept"] = "application/json", ["X-Forwarded-For"] = address })
end

done = report.done
