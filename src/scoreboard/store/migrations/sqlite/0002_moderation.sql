-- Moderation: bans and the admin audit log. The seed tables (user_score, action_log) are unchanged:
-- a banned user's score stays stored (the truth); board queries leave banned users out.

-- NULL unless banned; otherwise the moment (µs) the ban took effect, never before the user's
-- last score, so a late replay of an older score cannot put them back on a cached board.
ALTER TABLE users ADD COLUMN banned_at INTEGER;

CREATE TABLE admin_audit (
    audit_id  INTEGER PRIMARY KEY AUTOINCREMENT,  -- rises with every act: newest first is DESC
    actor_id  TEXT NOT NULL REFERENCES users (user_id),
    action    TEXT NOT NULL,                      -- 'ban', 'unban', 'score_correction'
    target_id TEXT NOT NULL REFERENCES users (user_id),
    reason    TEXT NOT NULL,
    before    TEXT NOT NULL,                      -- JSON: {"score": n, "banned": b}
    after     TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX admin_audit_target ON admin_audit (target_id, audit_id);
