-- An application's GraphQL API for remote selections: its URL, and its request headers as a
-- sealed JSON object (they usually carry credentials).
ALTER TABLE applications ADD COLUMN graphql_api_url TEXT;
ALTER TABLE applications ADD COLUMN graphql_api_headers BYTEA;
