-- release-8.lua: the visitor gives a live hold back (chose to stop or start over).
--
-- KEYS[1]  free             the deployment's inventory keys, as _lib.lua lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6]  hold:<hid>
-- KEYS[7]  owner:<owner>    STRING: the owner's live hold id
-- KEYS[8]  cfree:<centre>   the hold's centre, as the caller read it from the hold
-- ARGV[1]  hid
-- ARGV[2]  owner            must match the hold's owner
-- ARGV[3]  centre           the centre KEYS[8] belongs to
-- Returns outcome = released | not_live (the hold was not live, or belongs to someone else).
-- Clock: none needed (a hold that is already expired is simply not live).
--!include _lib.lua

local hid, owner, centre = ARGV[1], ARGV[2], ARGV[3]
local h = redis.call("HMGET", KEYS[6], "owner", "centre")
if h[1] ~= owner then return {"outcome", "not_live"} end
-- A hold's centre never changes: a different one is a caller's bug, not a race.
if h[2] ~= centre then error("release-8: hold centre is not " .. centre) end
if release_hold(6, 7, 8, hid, "released") then return {"outcome", "released"} end
return {"outcome", "not_live"}
