-- The request an attempt sent, for the portal's attempt page: its headers as a JSON object
-- (custom header values and `static-header` secrets replaced, since those are sealed at rest),
-- and its body when shaping made it differ from the message's payload (NULL: the payload, byte
-- for byte). The body is deleted with the response body (retention, content deletion).
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
ALTER TABLE attempts ADD COLUMN request_body TEXT;
