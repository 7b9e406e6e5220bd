#!/usr/bin/env bash
# Makes the upgrade test's fixtures (crates/herald/tests/fixtures/upgrade/) with a RELEASED
# herald binary: a database written by that release's migrations, holding messages that are
# still to be delivered. `cargo test -p herald --test it upgrade` then opens them with the
# current binary, migrates them and checks that the backlog drains with nothing lost.
#
#   tests/upgrade/make-fixture.sh BINARY COMMIT [POSTGRES_URL]
#
# BINARY: `herald` built at COMMIT (the release), e.g.
#   git worktree add /tmp/release <tag> && (cd /tmp/release && cargo build -p herald --bin herald)
#   cp target/debug/herald /tmp/herald-<commit>
# POSTGRES_URL (or HERALD_TEST_DATABASE_URL): a server where the script may create and drop a
# database, for the Postgres fixture (`pg_dump` of it); without one only SQLite is made.
#
# What each fixture holds (one application `upgrade`, three event types, an app API key):
# - endpoint `signed`: every message, a secret set here, a custom header (both sealed with the
#   fixed key below);
# - endpoint `fifo`: `ordering: fifo`, event types `order.*`;
# - endpoint `filtered`: channel `eu` and a payload filter `amount >= 50`;
# - DELIVERED messages (i = 0..) delivered while a receiver answered, then PENDING messages
#   published after it went away: connection refused, retried on a short schedule (so that
#   every retry is due again seconds after the fixture is made), FIFO held back behind its head.
# The endpoints' URLs point at http://127.0.0.1:<port>, a port nothing listens on any more;
# the test rewrites that prefix (the manifest's `receiver`) to its own receiver before it
# starts the new binary. Message i has event type order.created / order.updated / invoice.paid
# (i % 3), channel eu (even i) or us, payload {"i": i, "amount": i % 100}.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
bin="$(realpath "$1")"
commit="$2"
pg_url="${3:-${HERALD_TEST_DATABASE_URL:-}}"
cd "$(dirname "$0")/../.."
out="$PWD/crates/herald/tests/fixtures/upgrade"
mkdir -p "$out"

# The key sealing the fixtures' secrets (the test runs the new binary with it) and the admin
# token: test values, never used anywhere else.
KEY="AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
TOKEN="upgrade-fixture-admin-token-0123"
SECRET="whsec_dXBncmFkZS1maXh0dXJlLXNpZ25pbmcta2V5IQ=="
DELIVERED=20
PENDING=300

# Whatever this script started is stopped, whatever it created dropped, however it ends.
server="" receiver="" name="" work=""
cleanup() {
    for pid in $server $receiver; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$name" ]; then psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"; fi
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A receiver answering 204 to everything, writing "path webhook-id" per request to $1.
start_receiver() {
    python3 - "$1" "$2" <<'PY' &
import http.server, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        log.write(f"{self.path} {self.headers.get('webhook-id')}\n")
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
PY
    receiver=$!
}

api() { # METHOD PATH [BODY]
    curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' ${3:+-d "$3"}
}

event_type() { case $(($1 % 3)) in 0) echo order.created ;; 1) echo order.updated ;; *) echo invoice.paid ;; esac; }

# How many deliveries messages [from, to) make: every one to `signed`, order.* to `fifo`,
# even i with amount >= 50 to `filtered`.
deliveries() {
    local n=0 i
    for ((i = $1; i < $2; i++)); do
        n=$((n + 1))
        if [ $((i % 3)) -ne 2 ]; then n=$((n + 1)); fi
        if [ $((i % 2)) -eq 0 ] && [ $((i % 100)) -ge 50 ]; then n=$((n + 1)); fi
    done
    echo "$n"
}

# make ENGINE: runs the release on a fresh database of that engine and fills it.
make_one() {
    local engine="$1" port rport log
    work="$(mktemp -d)"
    port="$(free_port)"
    rport="$(free_port)"
    base="http://127.0.0.1:$port"
    log="$work/received.log"
    : >"$log"
    start_receiver "$log" "$rport"

    local env=(HERALD_ENCRYPTION_KEY="$KEY" HERALD_ADMIN_TOKEN="$TOKEN")
    if [ "$engine" = postgres ]; then
        env+=(HERALD_DATABASE_URL="$db_url")
    fi
    # Retries 2 s and then 20 s apart: every retry the fixture holds is due soon after it is
    # made. (Payloads expire 90 days after publishing, the most a message may ask for: the test
    # moves that expiry before it opens the fixture.)
    env "${env[@]}" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
        --allow-network 127.0.0.0/8 --retry-schedule 2s,20s,20s,20s,20s,20s,20s \
        --log-format json 2>"$work/herald.log" &
    server=$!
    for _ in $(seq 200); do
        if curl -fs -o /dev/null "$base/api/v1/health"; then break; fi
        kill -0 "$server" || { cat "$work/herald.log" >&2; exit 1; }
        sleep 0.1
    done

    local r="http://127.0.0.1:$rport"
    api POST /api/v1/app '{"name": "Upgrade fixture", "uid": "upgrade"}' >/dev/null
    for t in order.created order.updated invoice.paid; do
        api POST /api/v1/event-type "{\"name\": \"$t\", \"description\": \"$t\"}" >/dev/null
    done
    api_key="$(api POST /api/v1/api-key \
        '{"name": "upgrade fixture", "role": "app", "appId": "upgrade"}' | jq -r .token)"
    api POST /api/v1/app/upgrade/endpoint "{\"uid\": \"signed\", \"url\": \"$r/signed\",
        \"secret\": \"$SECRET\", \"headers\": {\"X-Fixture\": \"sealed-header\"}}" >/dev/null
    api POST /api/v1/app/upgrade/endpoint "{\"uid\": \"fifo\", \"url\": \"$r/fifo\",
        \"ordering\": \"fifo\", \"filterTypes\": [\"order.*\"]}" >/dev/null
    api POST /api/v1/app/upgrade/endpoint "{\"uid\": \"filtered\", \"url\": \"$r/filtered\",
        \"channels\": [\"eu\"], \"filter\": {\"amount\": {\"\$gte\": 50}}}" >/dev/null

    publish() { # i
        local channel=us
        if [ $(($1 % 2)) -eq 0 ]; then channel=eu; fi
        api POST /api/v1/app/upgrade/msg "{\"eventType\": \"$(event_type "$1")\",
            \"eventId\": \"fixture-$1\", \"channels\": [\"$channel\"], \"tags\": [\"fixture\"],
            \"payload\": {\"i\": $1, \"amount\": $(($1 % 100))}}" | jq -r .id
    }
    local ids=() i
    for ((i = 0; i < DELIVERED; i++)); do ids+=("$(publish "$i")"); done
    local want
    want="$(deliveries 0 "$DELIVERED")"
    for _ in $(seq 300); do
        if [ "$(wc -l <"$log")" -ge "$want" ]; then break; fi
        sleep 0.1
    done
    [ "$(wc -l <"$log")" -eq "$want" ] || { echo "delivered $(wc -l <"$log") of $want" >&2; exit 1; }

    # The receiver goes away: from now on every attempt is refused.
    kill "$receiver"; wait "$receiver" 2>/dev/null || true; receiver=""
    for ((i = DELIVERED; i < DELIVERED + PENDING; i++)); do ids+=("$(publish "$i")"); done
    # Let first attempts and the 2 s retries fail.
    sleep 8
    kill -TERM "$server"
    wait "$server"; server=""
    [ "$(wc -l <"$log")" -eq "$want" ]

    printf '%s\n' "${ids[@]}" | jq -R . | jq -s \
        --arg commit "$commit" --arg key "$KEY" --arg token "$TOKEN" --arg secret "$SECRET" \
        --arg apiKey "$api_key" --arg receiver "$r" --argjson delivered "$DELIVERED" \
        '{madeBy: $commit, encryptionKey: $key, adminToken: $token, apiKey: $apiKey,
          secret: $secret, receiver: $receiver, delivered: $delivered, messages: .}' \
        >"$out/$engine.manifest.json"

    if [ "$engine" = sqlite ]; then
        # One complete file: the WAL checkpointed into it, the free pages dropped.
        sqlite3 "$work/data/herald.db" 'PRAGMA wal_checkpoint(TRUNCATE); VACUUM;' >/dev/null
        [ ! -s "$work/data/herald.db-wal" ]
        cp "$work/data/herald.db" "$out/sqlite.db"
    else
        pg_dump --inserts --no-owner --no-privileges --no-comments "$db_url" \
            | grep -v -e '^--' -e '^\\' | cat -s >"$out/postgres.sql"
    fi
    rm -rf "$work"; work=""
}

make_one sqlite
if [ -n "$pg_url" ]; then
    name="herald_fixture_$$"
    psql -q "$pg_url" -c "CREATE DATABASE $name"
    db_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_url" "$name")"
    make_one postgres
else
    echo "no Postgres URL: only the SQLite fixture was made" >&2
fi
ls -l "$out"
