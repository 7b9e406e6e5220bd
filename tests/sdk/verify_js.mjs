// Receivers' libraries verify real Herald deliveries (README, "Verifying deliveries").
//
// A loopback receiver records what Herald posts; each delivery is then checked with the code a
// receiver would write: the `standardwebhooks` package, the Svix SDK's `Webhook` (which reads
// the `svix-*` headers), Node's crypto for plain HMAC (hex schemes) and Ed25519
// (`standard-v1a`, with the public key only). Needs HERALD_URL and HERALD_TOKEN.
import { createHmac, createPublicKey, verify as verifySignature } from "node:crypto";
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";

const BASE = process.env.HERALD_URL;
const TOKEN = process.env.HERALD_TOKEN;
const waiting = [];
const arrived = [];

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const delivery = { body: Buffer.concat(chunks), headers: req.headers };
    const next = waiting.shift();
    if (next) next(delivery);
    else arrived.push(delivery);
    res.writeHead(204).end();
  });
});

function nextDelivery() {
  if (arrived.length) return Promise.resolve(arrived.shift());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no delivery within 20 s")), 20000);
    waiting.push((d) => {
      clearTimeout(timer);
      resolve(d);
    });
  });
}

async function api(method, path, body) {
  const res = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

async function deliver(appId, payload) {
  await api("POST", `/app/${appId}/msg`, { eventType: "device.online", payload });
  return nextDelivery();
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

async function main() {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  let checks = 0;

  const app = await api("POST", "/app", { name: "verify-js" });
  const ep = await api("POST", `/app/${app.id}/endpoint`, { url });
  const secret = (await api("GET", `/app/${app.id}/endpoint/${ep.id}/secret`)).key;

  // standard-v1 with the standardwebhooks library and the Svix SDK.
  let { body, headers } = await deliver(app.id, { device: "imp-1", battery: 0.07 });
  assert(new Webhook(secret).verify(body.toString(), headers).device === "imp-1", "standardwebhooks");
  const svixHeaders = Object.fromEntries(
    Object.entries(headers).filter(([k]) => k.startsWith("svix-")),
  );
  // The Svix SDK throws on a bad signature.
  new SvixWebhook(secret).verify(body.toString(), svixHeaders);
  let tampered = false;
  try {
    new Webhook(secret).verify(body.toString().replace("imp-1", "imp-2"), headers);
  } catch {
    tampered = true;
  }
  assert(tampered, "a tampered body must not verify");
  checks += 3;

  // Rotation: both secrets verify during the grace period.
  await api("POST", `/app/${app.id}/endpoint/${ep.id}/secret/rotate`, {});
  const newSecret = (await api("GET", `/app/${app.id}/endpoint/${ep.id}/secret`)).key;
  ({ body, headers } = await deliver(app.id, { n: 2 }));
  assert(headers["webhook-signature"].split(" ").length === 2, headers["webhook-signature"]);
  new Webhook(secret).verify(body.toString(), headers);
  new Webhook(newSecret).verify(body.toString(), headers);
  checks += 2;
  await api("DELETE", `/app/${app.id}/endpoint/${ep.id}`);

  // The hex schemes with plain HMAC, as in the README.
  for (const [scheme, header, digest, prefix] of [
    ["hmac-sha1-hex", "x-signature", "sha1", ""],
    ["hmac-sha256-hex", "x-signature-256", "sha256", "sha256="],
  ]) {
    const hexEp = await api("POST", `/app/${app.id}/endpoint`, {
      url,
      secret: "shared-key-from-the-console",
      signature: { scheme },
    });
    ({ body, headers } = await deliver(app.id, { scheme }));
    const expected = prefix + createHmac(digest, "shared-key-from-the-console").update(body).digest("hex");
    assert(headers[header] === expected, `${scheme}: ${headers[header]} != ${expected}`);
    await api("DELETE", `/app/${app.id}/endpoint/${hexEp.id}`);
    checks += 1;
  }

  // standard-v1a: Ed25519 over `{id}.{timestamp}.{body}`, verified with the public key only.
  const edEp = await api("POST", `/app/${app.id}/endpoint`, { url, signature: { scheme: "standard-v1a" } });
  const publicKey = (await api("GET", `/app/${app.id}/endpoint/${edEp.id}/secret`)).publicKey;
  assert(publicKey.startsWith("whpk_"), publicKey);
  ({ body, headers } = await deliver(app.id, { scheme: "standard-v1a" }));
  const [version, signature] = headers["webhook-signature"].split(",");
  assert(version === "v1a", headers["webhook-signature"]);
  // A raw 32-byte Ed25519 key as a JWK.
  const key = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey.slice(5), "base64").toString("base64url") },
    format: "jwk",
  });
  const signed = Buffer.concat([
    Buffer.from(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.`),
    body,
  ]);
  assert(verifySignature(null, signed, key, Buffer.from(signature, "base64")), "ed25519 signature");
  assert(!verifySignature(null, Buffer.concat([signed, Buffer.from(" ")]), key, Buffer.from(signature, "base64")), "ed25519 tamper");
  checks += 2;

  await api("DELETE", `/app/${app.id}`);
  server.close();
  console.log(`standardwebhooks javascript: ${checks} checks passed`);
}

main().catch((e) => {
  console.error(`standardwebhooks javascript: FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
