-- 0002_centre_side.sql: what happens at the centre, and personal data kept only as long
-- as needed (issue 17).
--
--   check-in         each dose of a booking is marked attended or no-show at the desk;
--                    a mark is a state, not an event, so marking twice counts once
--   cancelling a day a closure records who cancelled which range of a centre and why; the
--                    bookings it cancelled point at it, and the units it withdrew are
--                    counted in slots.closed (capacity shrinks, so offers never see them)
--   retention        a purge removes names, birth dates and contacts and records when;
--                    the rows, and so every count, stay

CREATE TABLE closures (
    id bigserial PRIMARY KEY,
    centre text NOT NULL REFERENCES centres (id),
    from_at bigint NOT NULL,
    until_at bigint NOT NULL,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created bigint NOT NULL,
    bookings integer NOT NULL DEFAULT 0,    -- bookings it cancelled
    units_closed integer NOT NULL DEFAULT 0, -- slot units it withdrew
    CHECK (from_at < until_at)
);

ALTER TABLE slots ADD COLUMN closed integer NOT NULL DEFAULT 0 CHECK (closed >= 0);

ALTER TABLE bookings
    ADD COLUMN first_attendance text CHECK (first_attendance IN ('attended', 'no_show')),
    ADD COLUMN first_marked_at bigint,
    ADD COLUMN second_attendance text CHECK (second_attendance IN ('attended', 'no_show')),
    ADD COLUMN second_marked_at bigint,
    ADD COLUMN closure bigint REFERENCES closures (id),
    ADD COLUMN purged_at bigint,
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN birth DROP NOT NULL,
    ALTER COLUMN channel DROP NOT NULL,
    ALTER COLUMN address DROP NOT NULL,
    ADD CONSTRAINT bookings_personal_until_purged CHECK (
        purged_at IS NOT NULL
        OR (name IS NOT NULL AND birth IS NOT NULL AND channel IS NOT NULL
            AND address IS NOT NULL)),
    ADD CONSTRAINT bookings_marked_when CHECK (
        (first_attendance IS NULL) = (first_marked_at IS NULL)
        AND (second_attendance IS NULL) = (second_marked_at IS NULL));

-- The day list: a centre's bookings by the start of either dose.
CREATE INDEX bookings_by_first_dose ON bookings (centre, first_start);
CREATE INDEX bookings_by_second_dose ON bookings (centre, second_start);

ALTER TABLE holds
    ADD COLUMN purged_at bigint,
    ALTER COLUMN birth DROP NOT NULL,
    ADD CONSTRAINT holds_birth_until_purged CHECK (purged_at IS NOT NULL OR birth IS NOT NULL);

ALTER TABLE waitlist
    ADD COLUMN purged_at bigint,
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN birth DROP NOT NULL,
    ALTER COLUMN channel DROP NOT NULL,
    ALTER COLUMN address DROP NOT NULL,
    ADD CONSTRAINT waitlist_personal_until_purged CHECK (
        purged_at IS NOT NULL
        OR (name IS NOT NULL AND birth IS NOT NULL AND channel IS NOT NULL
            AND address IS NOT NULL));
