-- presence-4.lua: how many of the numbers still in line were seen polling lately.
--
-- The tick records each number a gate saw polling in one of three presence bitmaps (time
-- buckets of half the grace period that take turns); a number in none of them has not been
-- seen for at least the grace period and will be passed over as gone when the frontier
-- reaches it. This counts the others among the numbers first..last: the "present" of the
-- operators' figures. One BITOP and one BITCOUNT over the line's bytes, plus at most 14
-- GETBITs for the partial bytes at either end; the scratch key is deleted before returning.
--
-- KEYS[1]  qg:{room}:seen:0         bitmap: bit n set = ticket n seen in that time bucket
-- KEYS[2]  qg:{room}:seen:1         the same, the next bucket
-- KEYS[3]  qg:{room}:seen:2         the same, the bucket after
-- KEYS[4]  qg:{room}:seen:scratch   scratch bitmap: the three OR-ed (deleted again)
-- ARGV[1]  first number to count (the frontier + 1)
-- ARGV[2]  last number to count (the last handed out)
-- Returns  named fields: present, how many of first..last were seen.
-- Clock    none: which bucket is current is the tick's business; this reads all three.

local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
if last < first then
  return {'present', 0}
end
redis.call('BITOP', 'OR', KEYS[4], KEYS[1], KEYS[2], KEYS[3])
local first_byte, last_byte = math.floor(first / 8), math.floor(last / 8)
local count = redis.call('BITCOUNT', KEYS[4], first_byte, last_byte)
-- The whole bytes counted bits outside first..last at either end: take them off.
for n = first_byte * 8, first - 1 do
  count = count - redis.call('GETBIT', KEYS[4], n)
end
for n = last + 1, last_byte * 8 + 7 do
  count = count - redis.call('GETBIT', KEYS[4], n)
end
redis.call('DEL', KEYS[4])
return {'present', count}
