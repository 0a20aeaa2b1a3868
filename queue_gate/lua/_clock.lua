-- _clock.lua: the time every gate script works with; each script includes it with
-- `--!include _clock.lua`.
--
-- ARGV carries either a time from an injected clock (tests) or "" for Redis TIME: the one
-- clock that every gate process on every machine agrees on, which is what production uses.

local function room_now(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return tonumber(arg)
end
