-- Moderation: bans and the admin audit log. The seed tables (user_score, action_log) are unchanged:
-- a banned user's score stays stored (the truth); board queries leave banned users out.

-- NULL unless banned; otherwise the moment the ban took effect, never before the user's last
-- score, so a late replay of an older score cannot put them back on a cached board.
ALTER TABLE users ADD COLUMN banned_at TIMESTAMPTZ;

CREATE TABLE admin_audit (
    audit_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- newest first is DESC
    actor_id  UUID NOT NULL REFERENCES users (user_id),
    action    TEXT NOT NULL,                      -- 'ban', 'unban', 'score_correction'
    target_id UUID NOT NULL REFERENCES users (user_id),
    reason    TEXT NOT NULL,
    before    JSONB NOT NULL,                     -- {"score": n, "banned": b}
    after     JSONB NOT NULL,
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_audit_target ON admin_audit (target_id, audit_id);
