-- The peer's own database: the minimal peer's tables (its README), a users table for /v1/auth/me, and user 1
-- with an active subscription and a counter whose limit is out of reach.
DROP TABLE IF EXISTS usage_events, usage_counters, subscriptions, users;
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE, first_name text, last_name text,
                    role text NOT NULL DEFAULT 'user', created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE subscriptions (id uuid PRIMARY KEY, user_id int NOT NULL, plan_id int NOT NULL, status text NOT NULL,
                            created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON subscriptions (user_id, created_at DESC);
CREATE TABLE usage_counters (user_id int, feature text, used bigint NOT NULL DEFAULT 0, lim bigint NOT NULL,
                             PRIMARY KEY (user_id, feature));
CREATE TABLE usage_events (id bigserial PRIMARY KEY, user_id int, feature text, delta int, idem_key text UNIQUE,
                           created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO users (id, email, first_name, last_name) VALUES (1, 'peer@example.com', 'Ada', 'Lovelace');
INSERT INTO subscriptions (id, user_id, plan_id, status) VALUES (gen_random_uuid(), 1, 2, 'active');
INSERT INTO usage_counters (user_id, feature, lim) VALUES (1, 'api_calls', 1000000000000);
