-- release-12.lua: the visitor gives a live hold back (chose to stop or start over).
--
-- KEYS[1]  free             the deployment's shared keys, as _lib.lua lists them
-- KEYS[2]  cap
-- KEYS[3]  counts
-- KEYS[4]  ccounts
-- KEYS[5]  holds
-- KEYS[6]  identities       (not used here)
-- KEYS[7]  wl:identities    (not used here)
-- KEYS[8]  outbox           (not used here)
-- KEYS[9]  outbox:created   (not used here)
-- KEYS[10] hold:<hid>
-- KEYS[11] owner:<owner>    STRING: the owner's live hold id
-- KEYS[12] cfree:<centre>   the hold's centre, as the caller read it from the hold
-- ARGV[1]  hid
-- ARGV[2]  owner            must match the hold's owner
-- ARGV[3]  centre           the centre KEYS[12] belongs to
-- Returns outcome = released | not_live (the hold was not live, or belongs to someone else).
-- Clock: none needed (a hold that is already expired is simply not live).
--!include _lib.lua

local hid, owner, centre = ARGV[1], ARGV[2], ARGV[3]
local h = redis.call("HMGET", KEYS[10], "owner", "centre")
if h[1] ~= owner then return {"outcome", "not_live"} end
-- A hold's centre never changes: a different one is a caller's bug, not a race.
if h[2] ~= centre then error("release-12: hold centre is not " .. centre) end
if release_hold(10, 11, 12, hid, "released") then return {"outcome", "released"} end
return {"outcome", "not_live"}
