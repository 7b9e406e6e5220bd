"""Creates one of each resource in a fresh Herald, so that schemathesis reaches real handlers
(and checks real answers against the schema) instead of only 404s for random ids.

Usage: seed.py BASE_URL  (HERALD_ADMIN_TOKEN in the environment). Prints a JSON object of the
path and query values to draw from; run.sh turns it into schemathesis dictionaries.
Standard library only.
"""

import json
import os
import sys
import time
import urllib.request

BASE = sys.argv[1].rstrip("/")
TOKEN = os.environ["HERALD_ADMIN_TOKEN"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        text = response.read()
    return json.loads(text) if text else None


app = call("POST", "/api/v1/app", {"name": "Schemathesis", "uid": "st-app"})
call(
    "POST",
    "/api/v1/event-type",
    {
        "name": "st.event",
        "description": "seeded for schemathesis",
        "schemas": {"1": {"type": "object", "examples": [{"a": 1}]}},
    },
)
# A name that never resolves (`.invalid`): attempts fail at once and are recorded.
endpoint = call(
    "POST",
    "/api/v1/app/st-app/endpoint",
    {"url": "http://st-seed.invalid/hook", "uid": "st-ep", "eventTypes": ["st.event"]},
)
message = call(
    "POST",
    "/api/v1/app/st-app/msg",
    {"eventType": "st.event", "eventId": "st-msg", "payload": {"a": 1}},
)
call(
    "PUT",
    "/api/v1/app/st-app/device/st-device",
    {"name": "Seed device", "kind": "private", "group": "st-group"},
)
call("PUT", "/api/v1/app/st-app/device-group/st-group", {"test": True})
inbox = call("POST", "/api/v1/inbox", {"name": "st-inbox", "appId": app["id"]})
key = call("POST", "/api/v1/api-key", {"role": "read-only"})
operational = call(
    "POST", "/api/v1/operational-webhook/endpoint", {"url": "http://st-seed.invalid/ops"}
)

attempts = []
for _ in range(50):
    attempts = call("GET", f"/api/v1/app/st-app/attempt/msg/{message['id']}")["data"]
    if attempts:
        break
    time.sleep(0.1)

print(
    json.dumps(
        {
            "path.app_id": [app["id"], "st-app"],
            "path.endpoint_id": [endpoint["id"], "st-ep", operational["id"]],
            "path.msg_id": [message["id"], "st-msg"],
            "path.attempt_id": [a["id"] for a in attempts] or ["atmpt_none"],
            "path.event_type_name": ["st.event"],
            "path.device_id": ["st-device"],
            "path.group": ["st-group"],
            "path.inbox": ["st-inbox"],
            "path.inbox_id": ["st-inbox", inbox["id"]],
            "path.key_id": [key["id"]],
            "path.path": ["factory/blessing", "testresult.json"],
            "query.token": [inbox["token"]],
        }
    )
)
