"""Receivers' libraries verify real Herald deliveries (README, "Verifying deliveries").

A loopback receiver records what Herald posts; each delivery is then checked with the code a
receiver would write: the `standardwebhooks` package, the Svix SDK's `Webhook` (which reads the
`svix-*` headers), and plain `hmac` for the hex schemes. (Ed25519, `standard-v1a`, is checked
in verify_js.mjs with Node's built-in crypto; Python's standard library has none.) Needs HERALD_URL and HERALD_TOKEN.
"""

import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks
import svix.webhooks

BASE = os.environ["HERALD_URL"]
TOKEN = os.environ["HERALD_TOKEN"]
received: "queue.Queue[tuple[bytes, dict[str, str]]]" = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        received.put((body, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args):
        pass


def api(method: str, path: str, body=None):
    req = urllib.request.Request(
        f"{BASE}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def deliver(app_id: str, payload) -> tuple[bytes, dict[str, str]]:
    api("POST", f"/app/{app_id}/msg", {"eventType": "device.online", "payload": payload})
    return received.get(timeout=20)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    checks = 0

    app = api("POST", "/app", {"name": "verify-python"})
    ep = api("POST", f"/app/{app['id']}/endpoint", {"url": url})
    secret = api("GET", f"/app/{app['id']}/endpoint/{ep['id']}/secret")["key"]

    # -- standard-v1 with the standardwebhooks library and the Svix SDK --
    body, headers = deliver(app["id"], {"device": "imp-1", "battery": 0.07})
    assert standardwebhooks.Webhook(secret).verify(body, headers)["device"] == "imp-1"
    svix_headers = {k: v for k, v in headers.items() if k.startswith("svix-")}
    # The Svix SDK raises on a bad signature and returns nothing on a good one.
    svix.webhooks.Webhook(secret).verify(body, svix_headers)
    try:
        standardwebhooks.Webhook(secret).verify(body.replace(b"imp-1", b"imp-2"), headers)
        raise AssertionError("a tampered body verified")
    except standardwebhooks.WebhookVerificationError:
        pass
    checks += 3

    # -- rotation: both secrets verify during the grace period --
    api("POST", f"/app/{app['id']}/endpoint/{ep['id']}/secret/rotate", {})
    new_secret = api("GET", f"/app/{app['id']}/endpoint/{ep['id']}/secret")["key"]
    assert new_secret != secret
    body, headers = deliver(app["id"], {"n": 2})
    assert len(headers["webhook-signature"].split(" ")) == 2, headers
    standardwebhooks.Webhook(secret).verify(body, headers)
    standardwebhooks.Webhook(new_secret).verify(body, headers)
    checks += 2
    api("DELETE", f"/app/{app['id']}/endpoint/{ep['id']}")

    # -- the hex schemes with plain HMAC, as in the README --
    for scheme, header, digest, prefix in [
        ("hmac-sha1-hex", "x-signature", hashlib.sha1, ""),
        ("hmac-sha256-hex", "x-signature-256", hashlib.sha256, "sha256="),
    ]:
        hex_ep = api(
            "POST",
            f"/app/{app['id']}/endpoint",
            {"url": url, "secret": "shared-key-from-the-console", "signature": {"scheme": scheme}},
        )
        body, headers = deliver(app["id"], {"scheme": scheme})
        expected = prefix + hmac.new(b"shared-key-from-the-console", body, digest).hexdigest()
        assert hmac.compare_digest(expected, headers[header]), (scheme, headers)
        api("DELETE", f"/app/{app['id']}/endpoint/{hex_ep['id']}")
        checks += 1

    api("DELETE", f"/app/{app['id']}")
    server.shutdown()
    print(f"standardwebhooks python: {checks} checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure with its type
        print(f"standardwebhooks python: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        raise
