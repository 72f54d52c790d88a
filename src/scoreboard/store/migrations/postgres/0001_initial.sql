-- The seed's tables (user_score, action_log) by their names, extended for tickets, tie-breaks,
-- accounts, refresh-token families and the transactional outbox. The same schema as the SQLite one.
-- Times are TIMESTAMPTZ: PostgreSQL keeps them to the microsecond, exactly the tie-break unit.
-- Ids are UUID, which order by their bytes: the same order as their canonical lowercase text, so
-- the board's last tie-break agrees with the cache whatever the database's collation.

CREATE TABLE users (
    user_id       UUID PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,       -- NFKC + casefold: names unique regardless of case
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT[] NOT NULL DEFAULT '{user}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_score (
    user_id          UUID PRIMARY KEY REFERENCES users (user_id),
    score            BIGINT NOT NULL DEFAULT 0 CHECK (score >= 0),
    score_reached_at TIMESTAMPTZ NOT NULL,    -- when `score` was reached: ties go to the earlier
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
-- Serves the top-N query (an index scan in board order) and bounds rank counting.
CREATE INDEX user_score_board ON user_score (score DESC, score_reached_at ASC, user_id ASC);

CREATE TABLE action_log (
    action_id   UUID PRIMARY KEY,             -- the unique key that makes redemption exactly-once
    user_id     UUID NOT NULL REFERENCES user_score (user_id),
    type        TEXT NOT NULL,
    points      BIGINT NOT NULL CHECK (points > 0),
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    redeemed_at TIMESTAMPTZ,                  -- NULL until processed; set once
    timestamp   TIMESTAMPTZ NOT NULL,         -- when the row was recorded (issue, or open-policy processing)
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX action_log_user ON action_log (user_id, issued_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,              -- SHA-256 of the opaque token; the token itself is never stored
    family_id  TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (user_id),
    expires_at TIMESTAMPTZ NOT NULL,
    spent_at   TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE outbox (
    event_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      UUID NOT NULL,
    display_name TEXT NOT NULL,
    score        BIGINT NOT NULL,
    reached_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
-- The relay's scan: only unpublished events are indexed, so it stays small however long the history.
CREATE INDEX outbox_pending ON outbox (event_id) WHERE published_at IS NULL;
