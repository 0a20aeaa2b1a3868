-- sweep-0.lua: expire holds whose time ran out and give their units back.
--
-- KEYS     none
-- ARGV[1]  P   ARGV[2] now   ARGV[3] at most this many holds per call
-- Derived keys: holds, hold:*, free, cap, cfree:*, owner:*, counts.
-- Returns the number of holds looked at (expired).
-- Clock: ARGV now (the app clock). hold-1.lua does the same lazily, so capacity comes back
-- even when no sweeper runs.
--!include _lib.lua

return expire_holds(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
