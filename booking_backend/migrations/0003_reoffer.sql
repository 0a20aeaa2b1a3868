-- 0003_reoffer.sql: people whose appointments a centre cancelled are offered a new pair
-- first, exactly once (issue 17).
--
--   first in line    a closure puts each person it cancelled on their district's waiting
--                    list with priority 1; the filler serves entries by priority, then by
--                    order of joining, so they come before everyone who was waiting
--   at most once     an entry is served once (the filler's SKIP LOCKED and status change),
--                    one waiting entry per person (waitlist_one_waiting_per_person), and
--                    one re-offer per person and closure (waitlist_one_reoffer_per_closure)
--   the notice       the reason goes with the notice in the outbox row that carries it

ALTER TABLE waitlist
    ADD COLUMN priority smallint NOT NULL DEFAULT 0 CHECK (priority IN (0, 1)),
    ADD COLUMN closure bigint REFERENCES closures (id),
    ADD CONSTRAINT waitlist_priority_from_closure CHECK ((priority = 1) = (closure IS NOT NULL));
CREATE UNIQUE INDEX waitlist_one_reoffer_per_closure ON waitlist (closure, identity)
    WHERE closure IS NOT NULL;

ALTER TABLE outbox ADD COLUMN reason text;  -- a closure's reason, for its notices
