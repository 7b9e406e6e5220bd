-- Svix's event type `groupName` and `featureFlags` (a list; the older single `featureFlag` is
-- now its first item), and the feature flags a portal token carries: an event type with flags
-- is visible to a portal token only when the token carries one of them. Lists are stored as
-- channels are, `,a,b,`.
ALTER TABLE event_types ADD COLUMN group_name TEXT;
ALTER TABLE event_types ADD COLUMN feature_flags TEXT;
UPDATE event_types SET feature_flags = ',' || feature_flag || ',' WHERE feature_flag IS NOT NULL;
ALTER TABLE api_keys ADD COLUMN feature_flags TEXT;
