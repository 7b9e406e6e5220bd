// Polling endpoints through the official Svix JavaScript SDK's `message.poller`, unmodified.
//
//   HERALD_URL=http://127.0.0.1:8071 HERALD_TOKEN=<admin token> node poller_js.mjs
//
// The endpoint is created with plain fetch (the SDK's EndpointIn has no `type`); then the SDK
// polls, consumes with a consumer Herald tracks, seeks, and `standardwebhooks` verifies every
// message. Exits non-zero on the first failure.

import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { Svix } from "svix";

const url = process.env.HERALD_URL;
const token = process.env.HERALD_TOKEN;
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const svix = new Svix(token, { serverUrl: url, retryScheduleInMs: [] });
const poller = svix.message.poller;

const app = await svix.application.create({ name: "JS poller" });
const created = await fetch(`${url}/api/v1/app/${app.id}/endpoint`, {
  method: "POST",
  headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  body: JSON.stringify({ type: "polling", secret }),
});
assert.equal(created.status, 201);
const sink = (await created.json()).id;
const endpoint = await svix.endpoint.get(app.id, sink);
assert.ok(endpoint.url.endsWith(`/api/v1/app/${app.id}/poller/${sink}`), endpoint.url);

const ids = [];
for (let i = 0; i < 9; i++) {
  const eventType = i % 2 ? "order.created" : "order.paid";
  const msg = await svix.message.create(app.id, {
    eventType,
    payload: { n: i, name: "é", nested: { b: [1, 2] } },
    channels: i < 3 ? ["eu"] : ["us"],
  });
  ids.push(msg.id);
}

let seen = [];
let iterator = undefined;
for (;;) {
  const page = await poller.poll(app.id, sink, { limit: 4, iterator });
  seen.push(...page.data.map((m) => m.id));
  iterator = page.iterator;
  if (page.done) break;
}
assert.deepEqual(seen, ids);
const paid = await poller.poll(app.id, sink, { eventType: "order.paid" });
assert.deepEqual(paid.data.map((m) => m.id), ids.filter((_, i) => i % 2 === 0));
const eu = await poller.poll(app.id, sink, { channel: "eu" });
assert.deepEqual(eu.data.map((m) => m.id), ids.slice(0, 3));

const wh = new Webhook(secret);
for (const m of (await poller.poll(app.id, sink, { limit: 100 })).data) {
  wh.verify(JSON.stringify(m.payload), m.headers);
  assert.ok(m.timestamp instanceof Date);
}

const first = await poller.consumerPoll(app.id, sink, "js-consumer", { limit: 5 });
const second = await poller.consumerPoll(app.id, sink, "js-consumer", {
  limit: 5,
  iterator: first.iterator,
});
assert.deepEqual([...first.data, ...second.data].map((m) => m.id), ids);
// Not acknowledged: the same again.
const again = await poller.consumerPoll(app.id, sink, "js-consumer", { limit: 5 });
assert.deepEqual(again.data.map((m) => m.id), ids.slice(5));

const target = await svix.message.get(app.id, ids[7]);
const seek = await poller.consumerSeek(app.id, sink, "js-consumer", {
  after: new Date(target.timestamp.getTime() - 1),
});
assert.ok(seek.iterator);
const afterSeek = await poller.consumerPoll(app.id, sink, "js-consumer");
assert.deepEqual(afterSeek.data.map((m) => m.id), ids.slice(7));
console.log("svix js message.poller: poll, consumerPoll, consumerSeek and signatures ok");
