//! The database schema, as numbered migrations. `PRAGMA user_version` records how many have
//! been applied; a database written by a newer dumpwatch (more migrations than this build knows)
//! is refused rather than guessed at.

/// The migrations, in order. Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[&str] = &[
    // 1: incidents, their evidence, the delivery outbox and the city's case reports.
    r#"
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,      -- UUIDv7, the incident id the city sees
    camera_id     TEXT NOT NULL,
    zone          TEXT NOT NULL,
    state         TEXT NOT NULL,         -- open | cleared
    category_code TEXT NOT NULL,
    appeared_at   REAL NOT NULL,         -- unix seconds
    raised_at     REAL NOT NULL,
    updated_at    REAL,                  -- last growth of the pile
    cleared_at    REAL,
    dwell_s       REAL NOT NULL,
    confidence    REAL NOT NULL,
    objects       TEXT NOT NULL,         -- JSON array of {class, score, bbox}
    actor         TEXT,                  -- JSON {class, bbox, last_seen} or NULL
    updates       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX incidents_camera ON incidents (camera_id, raised_at);
CREATE INDEX incidents_state ON incidents (state, raised_at);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    incident_id     TEXT NOT NULL REFERENCES incidents (id),
    event           TEXT NOT NULL,       -- raised | updated | cleared
    idempotency_key TEXT NOT NULL UNIQUE,
    body            TEXT NOT NULL,       -- the contract JSON, snapshots without their data
    created_at      REAL NOT NULL,       -- when the event happened (unix seconds)
    state           TEXT NOT NULL,       -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    delivered_at    REAL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_incident ON outbox (incident_id);

CREATE TABLE evidence (
    id           INTEGER PRIMARY KEY,
    incident_id  TEXT NOT NULL REFERENCES incidents (id),
    outbox_id    INTEGER REFERENCES outbox (id),
    role         TEXT NOT NULL,          -- event | event_clean | before | actor | after | clip
    path         TEXT NOT NULL,          -- relative to the storage directory
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    deleted_at   REAL                    -- removed by retention
);
CREATE INDEX evidence_incident ON evidence (incident_id);
CREATE INDEX evidence_age ON evidence (deleted_at, created_at);

CREATE TABLE case_reports (
    id          INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    status      TEXT NOT NULL,           -- registered | dispatched | handled | closed
    case_number TEXT NOT NULL,
    note        TEXT,
    reported_at REAL NOT NULL,           -- when the city says it happened
    received_at REAL NOT NULL
);
CREATE INDEX case_reports_incident ON case_reports (incident_id, id);
"#,
    // 2: the operations center's review of an incident. A dismissal is a false positive: kept for
    // tuning, its pending deliveries cancelled (outbox state `cancelled`).
    r#"
ALTER TABLE incidents ADD COLUMN review TEXT;        -- NULL | acknowledged | dismissed
ALTER TABLE incidents ADD COLUMN reviewed_at REAL;
ALTER TABLE incidents ADD COLUMN reviewed_by TEXT;
ALTER TABLE incidents ADD COLUMN review_note TEXT;
CREATE INDEX incidents_review ON incidents (review, raised_at);
"#,
    // 3: the incident feed's own order (newest first, no filter) without sorting the table.
    r#"
CREATE INDEX incidents_raised ON incidents (raised_at, id);
"#,
    // 4: an open incident's spot as the analyzer sees it (JSON), to follow it on after a restart.
    r#"
ALTER TABLE incidents ADD COLUMN spot TEXT;
"#,
    // 5: camera events for the operations center (a camera turned or covered, and back).
    r#"
CREATE TABLE camera_events (
    id          INTEGER PRIMARY KEY,
    camera_id   TEXT NOT NULL,
    view        TEXT NOT NULL,           -- moved | covered | home | learning
    previous    TEXT NOT NULL,           -- the view before
    at          REAL NOT NULL,           -- when the view changed (unix seconds)
    recorded_at REAL NOT NULL,
    UNIQUE (camera_id, at, view)
);
"#,
    // 6: why an operator reviewed an incident so, from a fixed list (for tuning and feedback).
    r#"
ALTER TABLE incidents ADD COLUMN review_reason TEXT; -- NULL | lighting | shadow | belongs_there | animal | other
"#,
];
