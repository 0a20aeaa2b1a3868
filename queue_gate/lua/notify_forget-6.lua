-- notify_forget-6.lua: forget a ticket's turn message, its contact first: the visitor was
-- admitted (their pass issued), or asked for no message.
--
-- KEYS[1]  qg:{room}:notify:contacts  hash: ticket id -> contact JSON (see _notify.lua)
-- KEYS[2]  qg:{room}:notify:due       zset: ticket id -> number, waiting for the message
-- KEYS[3]  qg:{room}:notify:claims    zset: ticket id -> end of a claim
-- KEYS[4]  qg:{room}:notify:keep      zset: ticket id -> place kept until
-- KEYS[5]  qg:{room}:notify:forget    zset: ticket id -> when everything of it goes
-- KEYS[6]  qg:{room}:notify:numbers   zset: ticket id -> number
-- ARGV[1]  ticket id
-- Returns  named fields: forgotten, 1 when a contact was deleted, else 0.
-- Clock    none.
--!include _notify.lua

return {'forgotten', notify_forget(ARGV[1])}
