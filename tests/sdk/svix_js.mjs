// Drives a running Herald with the official Svix JavaScript SDK, unmodified.
//
//   HERALD_URL=http://127.0.0.1:8071 HERALD_TOKEN=<admin token> node svix_js.mjs
//
// Exits non-zero on the first incompatibility.

import assert from "node:assert/strict";
import { Svix } from "svix";

const url = process.env.HERALD_URL;
const token = process.env.HERALD_TOKEN;
const run = Math.random().toString(36).slice(2, 10);
const client = (t) => new Svix(t, { serverUrl: url, retryScheduleInMs: [] });
const svix = client(token);

async function expectStatus(status, fn) {
  try {
    await fn();
  } catch (e) {
    assert.equal(e.code, status, `expected ${status}, got ${e.code}`);
    return e;
  }
  assert.fail(`expected HTTP ${status}, the call succeeded`);
}

let checks = 0;
await svix.health.get();

const app = await svix.application.create({ name: "JS app", uid: `js-${run}` });
assert.equal((await svix.application.getOrCreate({ name: "x", uid: `js-${run}` })).id, app.id);
assert.equal((await svix.application.get(`js-${run}`)).id, app.id);
assert.ok(app.createdAt instanceof Date);
const apps = await svix.application.list({ limit: 1 });
assert.equal(apps.data.length, 1);
await svix.application.patch(app.id, { throttleRate: 5 });
assert.equal((await svix.application.upsert(app.id, { name: "Updated" })).name, "Updated");
checks += 6;

const et = `js.event.${run}`;
await svix.eventType.create({ name: et, description: "JS event" });
assert.equal((await svix.eventType.get(et)).description, "JS event");
await svix.eventType.patch(et, { deprecated: true });
assert.equal((await svix.eventType.get(et)).deprecated, true);
checks += 3;

const ep = await svix.endpoint.create(app.id, { url: "https://example.com/js", eventTypes: [et] });
assert.deepEqual((await svix.endpoint.get(app.id, ep.id)).eventTypes, [et]);
await svix.endpoint.setHeaders(app.id, ep.id, { headers: { "X-A": "1" } });
assert.deepEqual((await svix.endpoint.getHeaders(app.id, ep.id)).headers, { "X-A": "1" });
await svix.endpoint.rotateSecret(app.id, ep.id, {});
assert.match((await svix.endpoint.getSecret(app.id, ep.id)).key, /^whsec_/);
checks += 4;

const msg = await svix.message.create(app.id, { eventType: et, payload: { n: 1 }, eventId: `e-${run}` }, { withContent: true });
assert.deepEqual(msg.payload, { n: 1 });
await expectStatus(409, () => svix.message.create(app.id, { eventType: et, payload: {}, eventId: `e-${run}` }));
const msgs = await svix.message.list(app.id, { eventTypes: [et, "other.type"], withContent: true });
assert.deepEqual(msgs.data.map((m) => m.id), [msg.id]);
const err = await expectStatus(422, () => svix.message.create(app.id, { eventType: "bad type", payload: {} }));
assert.deepEqual(err.body.detail[0].loc, ["body", "eventType"]);
checks += 4;

// Tags and a schedule, as this SDK sends them (dates as ISO strings in its models).
const deliverAt = new Date(Date.now() + 3600 * 1000);
deliverAt.setMilliseconds(0);
const later = await svix.message.create(app.id, { eventType: et, payload: {}, tags: [`t-${run}`], deliverAt });
assert.deepEqual(later.tags, [`t-${run}`]);
assert.equal(new Date(later.deliverAt).getTime(), deliverAt.getTime());
const tagged = await svix.message.list(app.id, { tag: `t-${run}` });
assert.deepEqual(tagged.data.map((m) => m.id), [later.id]);
checks += 3;

// A replay runs as a background task, followed to its end.
const replay = await svix.endpoint.replayMissing(app.id, ep.id, { since: new Date(Date.now() - 3600 * 1000) });
assert.ok(replay.id.startsWith("qtask_"));
assert.equal(replay.task, "endpoint.replay");
let task = await svix.backgroundTask.get(replay.id);
for (let i = 0; task.status === "running" && i < 400; i++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  task = await svix.backgroundTask.get(replay.id);
}
assert.equal(task.status, "finished");
assert.equal(typeof task.data.messagesSent, "number");
checks += 2;

const access = await svix.authentication.appPortalAccess(app.id, {});
const portal = client(access.token);
assert.equal((await portal.endpoint.list(app.id)).data.length, 1);
await portal.authentication.logout();
await expectStatus(401, () => portal.endpoint.list(app.id));
checks += 2;

await svix.endpoint.delete(app.id, ep.id);
await svix.eventType.delete(et);
await svix.application.delete(app.id);
await expectStatus(404, () => svix.application.get(app.id));
checks += 1;

console.log(`svix js sdk: ${checks} checks passed`);
