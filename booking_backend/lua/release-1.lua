-- release-1.lua: the visitor gives a live hold back (chose to stop or start over).
--
-- KEYS[1]  P.."hold:"..hid
-- ARGV[1]  P      ARGV[2] hid      ARGV[3] owner (must match the hold's owner)
-- Derived keys: free, cap, cfree:<centre>, holds, owner:<owner>, counts.
-- Returns 1 when released, 0 when the hold was not live or belongs to someone else.
-- Clock: none needed (a hold that is already expired is simply not live).
--!include _lib.lua

local P, hid, owner = ARGV[1], ARGV[2], ARGV[3]
if redis.call("HGET", KEYS[1], "owner") ~= owner then return 0 end
if release_hold(P, hid, "released") then return 1 end
return 0
