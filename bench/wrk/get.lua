-- get.lua: a plain GET of the URL's path (for the bare baseline handlers).
local report = dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
done = report.done
