-- 0001_initial.sql: the booking backend's system of record.
--
-- Times are whole seconds since the epoch (bigint), from the application's clock: every
-- backend process runs NTP-synced wall time, and the tests inject theirs.
-- The rules that must never break are held here, not only by code:
--   never oversold          slots CHECK (held + booked <= capacity), and every taking
--                           statement is a conditional UPDATE ... WHERE held + booked < capacity
--   one active booking      bookings_one_active_per_person: partial unique index over the
--   per person              identity HMAC of normalised name and birth date
--   one booking per letter  bookings_one_active_per_invitation
--   confirmation idempotent bookings.hold_id UNIQUE: a hold books at most once
--   one live hold per       holds_one_live_per_owner
--   visitor
--   one waiting entry       waitlist_one_waiting_per_person
--   per person

CREATE TABLE catalogue (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL,
    document text NOT NULL            -- the operator's JSON (centres, districts, postcodes)
);

CREATE TABLE centres (
    id text PRIMARY KEY,
    district text NOT NULL,
    name text NOT NULL
);

CREATE TABLE slots (
    centre text NOT NULL REFERENCES centres (id),
    start_at bigint NOT NULL,
    capacity integer NOT NULL CHECK (capacity >= 0),
    held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    booked integer NOT NULL DEFAULT 0 CHECK (booked >= 0),
    PRIMARY KEY (centre, start_at),
    CONSTRAINT slots_never_oversold CHECK (held + booked <= capacity)
);
-- The slots that still have a free unit, by centre and start: what offers and pairs search.
CREATE INDEX slots_open ON slots (centre, start_at) WHERE held + booked < capacity;

CREATE TABLE holds (
    id text PRIMARY KEY,
    owner text NOT NULL,                -- the admission ticket or session holding it
    centre text NOT NULL,
    first_start bigint NOT NULL,
    second_start bigint NOT NULL,
    expires bigint NOT NULL,
    status text NOT NULL
        CHECK (status IN ('held', 'confirmed', 'expired', 'released', 'replaced')),
    booking text,                       -- the booking code, once confirmed
    birth date NOT NULL,
    district text NOT NULL,             -- of the centre
    home_district text NOT NULL,
    invitation text NOT NULL DEFAULT '',  -- HMAC of the invitation code, '' without one
    inv_min_age integer,
    lang text NOT NULL DEFAULT 'de',
    identity text,                      -- HMAC of name and birth date, once given
    name text,
    channel text,
    address text,
    created bigint NOT NULL,
    ended bigint,                       -- when it stopped being held
    FOREIGN KEY (centre, first_start) REFERENCES slots (centre, start_at),
    FOREIGN KEY (centre, second_start) REFERENCES slots (centre, start_at),
    CHECK (first_start < second_start)
);
CREATE UNIQUE INDEX holds_one_live_per_owner ON holds (owner) WHERE status = 'held';
CREATE INDEX holds_live_by_expiry ON holds (expires) WHERE status = 'held';

CREATE TABLE bookings (
    code text PRIMARY KEY,
    hold_id text UNIQUE,                -- NULL for a waiting-list assignment
    centre text NOT NULL,
    district text NOT NULL,
    first_start bigint NOT NULL,
    second_start bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'cancelled')),
    identity text NOT NULL,
    invitation text NOT NULL DEFAULT '',
    name text NOT NULL,
    birth date NOT NULL,
    channel text NOT NULL,
    address text NOT NULL,
    lang text NOT NULL DEFAULT 'de',
    source text NOT NULL,
    created bigint NOT NULL,
    cancelled_at bigint,
    FOREIGN KEY (centre, first_start) REFERENCES slots (centre, start_at),
    FOREIGN KEY (centre, second_start) REFERENCES slots (centre, start_at)
);
CREATE UNIQUE INDEX bookings_one_active_per_person ON bookings (identity)
    WHERE status = 'active';
CREATE UNIQUE INDEX bookings_one_active_per_invitation ON bookings (invitation)
    WHERE status = 'active' AND invitation <> '';

CREATE TABLE waitlist (
    seq bigserial PRIMARY KEY,          -- the order of joining, across every list
    id text NOT NULL UNIQUE,
    identity text NOT NULL,
    district text NOT NULL,
    centre text,                        -- NULL: the district's list
    status text NOT NULL CHECK (status IN ('waiting', 'assigned', 'skipped', 'booked')),
    booking text,
    invitation text NOT NULL DEFAULT '',
    name text NOT NULL,
    birth date NOT NULL,
    channel text NOT NULL,
    address text NOT NULL,
    lang text NOT NULL DEFAULT 'de',
    joined bigint NOT NULL
);
CREATE UNIQUE INDEX waitlist_one_waiting_per_person ON waitlist (identity)
    WHERE status = 'waiting';
-- A centre's list (centre set) and a district's list (centre NULL), each by order of joining.
CREATE INDEX waitlist_centre_queue ON waitlist (centre, seq) WHERE status = 'waiting';
CREATE INDEX waitlist_district_queue ON waitlist (district, seq)
    WHERE status = 'waiting' AND centre IS NULL;

CREATE TABLE waves (
    name text PRIMARY KEY,
    min_age integer NOT NULL,
    count integer NOT NULL,
    created bigint NOT NULL
);

CREATE TABLE invitations (
    digest text PRIMARY KEY,            -- HMAC of the code; the code itself is never stored
    wave text NOT NULL REFERENCES waves (name)
);

CREATE TABLE verifications (
    id text PRIMARY KEY,                -- hold:<hold id> | cancel:<booking code>
    subject text NOT NULL,              -- what the code unlocks
    code_hash text NOT NULL,            -- HMAC of the code, bound to the subject
    status text NOT NULL CHECK (status IN ('pending', 'verified', 'locked', 'failed')),
    message text,                       -- the outbox message of the current code
    sends integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    requested bigint NOT NULL,
    delivered bigint,                   -- validity runs from here, never from requested
    counting_until bigint,              -- validity end of a delivered, unused code
    verified_at bigint,
    forget_after bigint NOT NULL
);
CREATE INDEX verifications_counting ON verifications (counting_until)
    WHERE counting_until IS NOT NULL;

-- The transactional outbox: written in the transaction of the change that causes it.
CREATE TABLE outbox (
    id text PRIMARY KEY,
    kind text NOT NULL,                 -- code | cancel_code | booked | assigned
    channel text NOT NULL,
    address text NOT NULL,
    lang text NOT NULL DEFAULT 'de',
    code text,                          -- a verification code, only until delivered
    booking text,
    verification text,
    attempts integer NOT NULL DEFAULT 0,
    due bigint NOT NULL,                -- a claim moves it to the end of the lease
    created bigint NOT NULL
);
CREATE INDEX outbox_due ON outbox (due);

-- Counters that only grow, for the metrics: each expiry counted in the step that makes it.
CREATE TABLE counters (
    name text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
INSERT INTO counters (name) VALUES ('holds_expired'), ('codes_expired');

-- The browser session between pages, and confirmation Idempotency-Keys.
CREATE TABLE sessions (
    id text PRIMARY KEY,
    data jsonb NOT NULL,
    expires bigint NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires);

CREATE TABLE idempotency_keys (
    digest text PRIMARY KEY,
    hold_id text NOT NULL,
    expires bigint NOT NULL
);
