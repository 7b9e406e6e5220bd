"""Polling endpoints through the official Svix Python SDK's `message_poller`, unmodified.

    HERALD_URL=http://127.0.0.1:8071 HERALD_TOKEN=<admin token> python poller_python.py

The endpoint is created over plain HTTP (the SDK's `EndpointIn` has no `type`); the SDK then
reads it (`endpoint.get` parses a polling endpoint), polls it, consumes it with a consumer whose
position Herald keeps, seeks, and verifies every message's signature with `standardwebhooks`.
Exit status 0 means every check passed.
"""

import json
import os
import urllib.request
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook
from svix.api import (
    ApplicationIn,
    MessageIn,
    MessagePollerConsumerPollOptions,
    MessagePollerPollOptions,
    PollingEndpointConsumerSeekIn,
    Svix,
    SvixOptions,
)

URL = os.environ["HERALD_URL"]
TOKEN = os.environ["HERALD_TOKEN"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

svix = Svix(TOKEN, SvixOptions(server_url=URL, retry_schedule=[]))
app = svix.application.create(ApplicationIn(name="Poller"))


def post(path, body):
    request = urllib.request.Request(
        URL + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


created = post(
    f"/api/v1/app/{app.id}/endpoint",
    {"type": "polling", "secret": SECRET, "filterTypes": ["order.*"]},
)
sink = created["id"]
endpoint = svix.endpoint.get(app.id, sink)
assert endpoint.url.endswith(f"/api/v1/app/{app.id}/poller/{sink}"), endpoint.url

ids = []
for i in range(12):
    event_type = "order.created" if i % 3 else "order.paid"
    msg = svix.message.create(
        app.id, MessageIn(event_type=event_type, payload={"n": i, "name": "é"}, channels=["eu"])
    )
    ids.append(msg.id)
svix.message.create(app.id, MessageIn(event_type="user.signup", payload={}))

# Stateless polling with the iterator.
seen, iterator = [], None
while True:
    page = svix.message.poller.poll(
        app.id, sink, MessagePollerPollOptions(limit=5, iterator=iterator)
    )
    seen += [m.id for m in page.data]
    iterator = page.iterator
    if page.done:
        break
assert seen == ids, (seen, ids)
paid = svix.message.poller.poll(app.id, sink, MessagePollerPollOptions(event_type="order.paid"))
assert [m.id for m in paid.data] == ids[::3]
eu = svix.message.poller.poll(app.id, sink, MessagePollerPollOptions(channel="eu", limit=100))
assert len(eu.data) == 12

# Every message is signed: standardwebhooks verifies the compact JSON of its payload.
wh = Webhook(SECRET)
for m in svix.message.poller.poll(app.id, sink, MessagePollerPollOptions(limit=100)).data:
    body = json.dumps(m.payload, separators=(",", ":"), ensure_ascii=False)
    wh.verify(body, m.headers)
    assert m.headers["webhook-id"] == m.id

# A consumer: reads, acknowledges by passing the iterator back, crashes, resumes.
first = svix.message.poller.consumer_poll(
    app.id, sink, "py-consumer", MessagePollerConsumerPollOptions(limit=4)
)
second = svix.message.poller.consumer_poll(
    app.id, sink, "py-consumer", MessagePollerConsumerPollOptions(limit=4, iterator=first.iterator)
)
assert [m.id for m in first.data + second.data] == ids[:8]
# Crash: `second` is never acknowledged; a restarted consumer gets it again.
again = svix.message.poller.consumer_poll(
    app.id, sink, "py-consumer", MessagePollerConsumerPollOptions(limit=4)
)
assert [m.id for m in again.data] == ids[4:8]

# Seek: from the message created after a time.
target = svix.message.get(app.id, ids[10])
out = svix.message.poller.consumer_seek(
    app.id,
    sink,
    "py-consumer",
    PollingEndpointConsumerSeekIn(after=target.timestamp - timedelta(milliseconds=1)),
)
assert out.iterator
after_seek = svix.message.poller.consumer_poll(app.id, sink, "py-consumer")
assert [m.id for m in after_seek.data] == ids[10:], [m.id for m in after_seek.data]
future = svix.message.poller.consumer_seek(
    app.id,
    sink,
    "py-consumer",
    PollingEndpointConsumerSeekIn(after=datetime.now(timezone.utc) + timedelta(hours=1)),
)
assert svix.message.poller.consumer_poll(app.id, sink, "py-consumer").data == []
print("svix python message_poller: poll, consumer_poll, consumer_seek and signatures ok")
