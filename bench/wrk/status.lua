-- status.lua: GET /queue/api/status with pre-issued tickets, round-robin per thread.
-- Usage: wrk ... -s status.lua URL -- TICKET_FILE   (one ticket per line)
local tickets = {}
local i = 0
local report = dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

function init(args)
  for line in io.lines(args[1]) do
    tickets[#tickets + 1] = line
  end
  i = math.random(#tickets) - 1
end

function request()
  i = i % #tickets + 1
  return wrk.format("GET", "/queue/api/status", { ["Authorization"] = "Bearer " .. tickets[i] })
end

done = report.done
