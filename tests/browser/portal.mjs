// The portal and the operator console in a real browser (Debian's Chromium, driven by
// playwright-core). Run by crates/herald/tests/it/browser.rs, which starts Herald and a test
// receiver and passes:
//   HERALD_URL, HERALD_TOKEN (admin), PORTAL_URL (from app-portal-access), RECEIVER_URL,
//   APP (its id or uid), EVENT_TYPE (with an example), INBOX (with entries), SCREENSHOTS (a directory).
// Each step saves a screenshot; the last line printed is a JSON summary for the Rust test.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("HERALD_URL");
const shots = env("SCREENSHOTS");
const eventType = env("EVENT_TYPE");
fs.mkdirSync(shots, { recursive: true });

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
});
context.setDefaultTimeout(15000);
const page = context.pages()[0] ?? (await context.newPage());
const step = (text) => console.log(`- ${text}`);
const shot = async (name) => {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
};
const flash = page.locator("main [role=status]").first();

/** Reloads until `locator` has at least `n` matches (deliveries happen in the background). */
async function waitFor(locator, n = 1, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  while ((await locator.count()) < n) {
    if (Date.now() > deadline) throw new Error(`waited ${seconds}s for ${n} × ${locator}`);
    await page.waitForTimeout(300);
    await page.reload();
  }
}

const summary = {};
try {
  // 1. The link signs in, the key leaves the address bar, the session is an HttpOnly cookie.
  await page.goto(env("PORTAL_URL"));
  await page.waitForURL(/\/portal\/app\/[^/]+\/endpoint$/);
  assert.ok(!page.url().includes("key="), `the key is gone from the address: ${page.url()}`);
  const cookie = (await context.cookies()).find((c) => c.name === "herald_portal");
  assert.ok(cookie, "a session cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/");
  assert.equal(await page.evaluate(() => document.cookie.includes("herald_portal")), false);
  // Nor is it in the history.
  const endpoints = page.url();
  await page.goBack({ waitUntil: "commit" });
  assert.ok(!page.url().includes("key="), `the key is in the history: ${page.url()}`);
  await page.goto(endpoints);
  step("signed in from the portal link; the key left the address bar");

  // 2. Create an endpoint: the browser checks JSON, the server refuses a private address with
  // the API's message, then the endpoint is created.
  await page.getByRole("link", { name: "Add endpoint" }).click();
  await page.getByLabel("URL", { exact: true }).fill("http://10.1.2.3/hooks");
  await page.getByLabel("Description").fill("Order updates");
  await page.locator(`input[name=eventTypes][value="${eventType}"]`).check();
  await page.getByLabel("Filter").fill("{not json");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  const invalid = await page.getByLabel("Filter").evaluate((el) => el.validationMessage);
  assert.match(invalid, /JSON/, "the browser refuses text that is not JSON");
  await page.getByLabel("Filter").fill("");
  await page.getByLabel("Timeout (seconds)").fill("10");
  await page.getByLabel("Retry schedule").fill("1, 2, 3");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await page.getByText("destination refused by the network policy").first().waitFor();
  assert.equal(await page.locator("#f-url").getAttribute("aria-describedby"), "f-url-d");
  await shot("endpoint-form-error");
  step("the server's refusal is shown at the URL field");
  await page.getByLabel("URL", { exact: true }).fill(env("RECEIVER_URL"));
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await flash.filter({ hasText: "Endpoint created." }).waitFor();
  const endpointUrl = page.url();
  summary.endpoint = endpointUrl.split("/").pop();
  step(`created ${summary.endpoint}`);

  // 3. Send the event type's example; the message page shows it and its successful attempt.
  await page.getByLabel("Event type").selectOption(eventType);
  await page.getByRole("button", { name: "Send example" }).click();
  await flash.filter({ hasText: `Example of ${eventType} sent` }).waitFor();
  summary.message = page.url().split("/").pop();
  await waitFor(page.locator("section:has(#attempts) .badge.ok"));
  await page.locator("section:has(#attempts) tbody a").first().click();
  await page.getByRole("heading", { name: "Attempt" }).waitFor();
  await page.getByRole("row", { name: /webhook-signature/ }).waitFor();
  assert.ok(await page.getByText("200", { exact: true }).count(), "response status 200");
  await shot("attempt");
  step(`sent ${summary.message}; its attempt succeeded, request headers shown`);

  // 4. Resend: a second, manual attempt.
  await page.goBack();
  await page.getByRole("button", { name: "Resend" }).click();
  await flash.filter({ hasText: "Resent" }).waitFor();
  await waitFor(page.locator("section:has(#attempts) .badge.ok"), 2);
  await shot("message");
  step("resent; two successful attempts");

  // More traffic for the log and the chart: published through the API as a producer would.
  for (let i = 1; i <= 5; i++) {
    const published = await fetch(`${base}/api/v1/app/${env("APP")}/msg`, {
      method: "POST",
      headers: { authorization: `Bearer ${env("HERALD_TOKEN")}`, "content-type": "application/json" },
      body: JSON.stringify({ eventType, payload: { id: 1000 + i, status: i % 2 ? "shipped" : "packed" } }),
    });
    assert.equal(published.status, 202);
  }

  // 5. The message log, filtered by event type and status.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Messages" }).click();
  await page.getByLabel("Event type").selectOption(eventType);
  await page.getByLabel("Status", { exact: true }).selectOption("success");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator("table.log tbody tr").first().waitFor();
  assert.equal(await page.locator("table.log .badge.bad").count(), 0, "only successes");
  await page.getByLabel("Status", { exact: true }).selectOption("");
  await page.getByRole("button", { name: "Filter" }).click();
  await waitFor(page.locator("table.log .badge.bad"), 5);
  await shot("message-log");
  step("message log filtered by event type and status; failures of the other endpoint shown");

  // 6. The endpoint's page with its statistics chart.
  await page.goto(endpointUrl);
  await waitFor(page.locator("table tbody .badge.ok"), 6);
  await page.locator("svg.chart rect.s-ok").first().waitFor();
  await shot("endpoint");
  step("endpoint page with the delivery chart");

  // 7. Reveal and rotate the secret.
  await page.getByRole("link", { name: "Signing secret" }).click();
  await page.getByRole("link", { name: "Reveal" }).click();
  const before = (await page.locator("#secret-value").textContent()).trim();
  assert.match(before, /^whsec_/);
  await page.getByLabel("Grace period (seconds)").fill("3600");
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await flash.filter({ hasText: "Secret rotated" }).waitFor();
  summary.secret = (await page.locator("#secret-value").textContent()).trim();
  assert.notEqual(summary.secret, before);
  await shot("secret");
  step("secret rotated");

  // 7b. Write a transformation: a syntax error is shown with its line, then the fixed code is
  // simulated and saved.
  await page.goto(endpointUrl);
  await page.getByRole("link", { name: "Transformation" }).click();
  const code = page.getByLabel("Code");
  await code.fill("function handler(webhook) {\n  return webhook +;\n}");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "line 2" }).waitFor();
  await code.fill("function handler(webhook) {\n  webhook.payload = {text: 'hi ' + webhook.payload.name};\n  return webhook;\n}");
  await page.getByLabel("Payload (JSON)").fill('{"name": "Ada"}');
  await page.getByRole("button", { name: "Simulate" }).click();
  await page.locator("figure.code").filter({ hasText: '{"text":"hi Ada"}' }).waitFor();
  await shot("transformation-simulated");
  await page.getByLabel("Run it for deliveries").check();
  await page.getByRole("button", { name: "Save" }).click();
  await flash.filter({ hasText: "Transformation saved" }).waitFor();
  assert.match(await page.locator("main").textContent(), /Status: enabled/);
  step("transformation: syntax error shown at its line, simulated, saved and enabled");

  // 8. Signing out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/portal$/);
  await page.goto(endpointUrl);
  await page.waitForURL(/\/portal$/);
  step("signed out; the pages need a new link");

  // 9. The operator signs in and exports an inbox.
  await page.goto(`${base}/admin`);
  await page.getByLabel("Admin token or API key").fill(env("HERALD_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await page.getByText("answering", { exact: true }).waitFor();
  await shot("dashboard");
  await page.getByRole("link", { name: "Inboxes" }).click();
  await page.getByRole("link", { name: env("INBOX"), exact: true }).click();
  await page.locator("tbody tr").first().waitFor();
  await shot("inbox");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export CSV" }).click(),
  ]);
  const file = path.join(shots, "inbox-export.csv");
  await download.saveAs(file);
  summary.csv = fs.readFileSync(file, "utf8");
  assert.match(summary.csv.split("\n")[0], /^key,path,receivedAt/);
  step(`operator signed in and exported ${summary.csv.trim().split("\n").length - 1} rows as CSV`);
} catch (error) {
  await shot("failure").catch(() => {});
  console.error(`failed at ${page.url()}`);
  throw error;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(summary));
