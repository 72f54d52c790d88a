-- The seed's tables (user_score, action_log) by their names, extended for tickets, tie-breaks,
-- accounts, refresh-token families and the transactional outbox.
-- Times are integer microseconds since the Unix epoch (UTC): exact, sortable, and the tie-break unit.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,       -- NFKC + casefold: names unique regardless of case
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT 'user',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE user_score (
    user_id          TEXT PRIMARY KEY REFERENCES users (user_id),
    score            INTEGER NOT NULL DEFAULT 0 CHECK (score >= 0),
    score_reached_at INTEGER NOT NULL,        -- when `score` was reached: ties go to the earlier
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX user_score_board ON user_score (score DESC, score_reached_at ASC, user_id ASC);

CREATE TABLE action_log (
    action_id   TEXT PRIMARY KEY,             -- the unique key that makes redemption exactly-once
    user_id     TEXT NOT NULL REFERENCES user_score (user_id),
    type        TEXT NOT NULL,
    points      INTEGER NOT NULL CHECK (points > 0),
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER,                      -- NULL until processed; set once
    timestamp   INTEGER NOT NULL,             -- when the row was recorded (issue, or open-policy processing)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX action_log_user ON action_log (user_id, issued_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,              -- SHA-256 of the opaque token; the token itself is never stored
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE outbox (
    event_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT NOT NULL,
    display_name TEXT NOT NULL,
    score        INTEGER NOT NULL,
    reached_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX outbox_pending ON outbox (event_id) WHERE published_at IS NULL;
