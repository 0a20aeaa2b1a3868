-- 0004_turn_near.sql: the queue gate's "your turn is near" messages (issue 16) go through
-- the outbox like codes: the link that restores the visitor's place, and about how many
-- minutes are left, ride in the row that carries the message (and leave with it).

ALTER TABLE outbox
    ADD COLUMN link text,
    ADD COLUMN minutes integer CHECK (minutes >= 0);
