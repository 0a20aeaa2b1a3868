-- _notify.lua: the keys of a room's turn messages (issue 16), shared by the notify scripts,
-- which include it with `--!include _notify.lua` and take these six keys in this order:
--   KEYS[1]  qg:{room}:notify:contacts  hash: ticket id -> JSON {n: number, c: channel,
--                                        a: address, l: language, u: site URL, e: epoch,
--                                        f: frontier at join}, only while needed
--   KEYS[2]  qg:{room}:notify:due       zset: ticket id -> number, waiting for the message
--   KEYS[3]  qg:{room}:notify:claims    zset: ticket id -> end of a process's claim (being
--                                        sent; after a failed send: when to try again)
--   KEYS[4]  qg:{room}:notify:keep      zset: ticket id -> until when the place is kept
--                                        without polling
--   KEYS[5]  qg:{room}:notify:forget    zset: ticket id -> when everything of it goes
--   KEYS[6]  qg:{room}:notify:numbers   zset: ticket id -> number, every ticket known here
--
-- A ticket is pending (in contacts and due), claimed (in contacts and claims) or sent
-- (in numbers only, kept until the message plus the grace period, then forgotten).

-- Remove every trace of a ticket; 1 if it still had a contact.
local function notify_forget(ticket)
  local had = redis.call('HDEL', KEYS[1], ticket)
  for i = 2, 6 do
    redis.call('ZREM', KEYS[i], ticket)
  end
  return had
end
