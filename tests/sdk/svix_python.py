"""Drives a running Herald with the official Svix Python SDK, unmodified.

Every operation of the compatible API is called through the SDK and its response parsed by the
SDK's own models; any incompatibility raises. Usage:

    HERALD_URL=http://127.0.0.1:8071 HERALD_TOKEN=<admin token> python svix_python.py

Exit status 0 means every check passed.
"""

import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from svix.api import (
    ApplicationIn,
    ApplicationListOptions,
    ApplicationPatch,
    AppPortalAccessIn,
    AppUsageStatsIn,
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    BulkExpungeContentsIn,
    BulkReplayIn,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointGetStatsOptions,
    EndpointIn,
    EndpointListOptions,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EnvironmentIn,
    EventExampleIn,
    EventTypeIn,
    EventTypeDeleteOptions,
    EventTypeImportOpenApiIn,
    IntegrationIn,
    IntegrationUpdate,
    EventTypeListOptions,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageCreateOptions,
    MessageGetOptions,
    MessageIn,
    MessageAttemptListAttemptedDestinationsOptions,
    MessageAttemptListAttemptedMessagesOptions,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
    MessageListOptions,
    MessagePrecheckIn,
    MessageStatus,
    OperationalWebhookEndpointHeadersIn,
    OperationalWebhookEndpointIn,
    RecoverIn,
    ReplayIn,
    StatusCodeClass,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

URL = os.environ["HERALD_URL"]
TOKEN = os.environ["HERALD_TOKEN"]
RUN = uuid.uuid4().hex[:8]


def client(token=TOKEN):
    return Svix(token, SvixOptions(server_url=URL, retry_schedule=[]))


def expect_status(status, fn):
    try:
        fn()
    except (HttpError, HTTPValidationError) as e:
        assert e.status_code == status, f"expected {status}, got {e.status_code}: {e}"
        return e
    raise AssertionError(f"expected HTTP {status}, the call succeeded")


def main():
    svix = client()
    checks = 0

    svix.health.get()
    checks += 1

    # -- applications --
    uid = f"sdk-app-{RUN}"
    app = svix.application.create(ApplicationIn(name="SDK app", uid=uid, metadata={"k": "v"}))
    assert app.uid == uid and app.metadata == {"k": "v"}
    same = svix.application.get_or_create(ApplicationIn(name="ignored", uid=uid))
    assert same.id == app.id, "get_or_create must return the existing application"
    assert svix.application.get(uid).id == app.id
    assert svix.application.get(app.id).uid == uid
    page = svix.application.list(ApplicationListOptions(limit=2, order="descending"))
    assert len(page.data) <= 2 and isinstance(page.done, bool)
    patched = svix.application.patch(app.id, ApplicationPatch(name="Renamed", throttle_rate=10))
    assert patched.name == "Renamed" and patched.throttle_rate == 10
    upserted = svix.application.upsert(uid, ApplicationIn(name="Upserted", uid=uid))
    assert upserted.id == app.id and upserted.name == "Upserted"
    created_by_put = svix.application.upsert(f"put-{RUN}", ApplicationIn(name="By PUT"))
    assert created_by_put.uid == f"put-{RUN}"
    expect_status(409, lambda: svix.application.create(ApplicationIn(name="dup", uid=uid)))
    err = expect_status(422, lambda: svix.application.create(ApplicationIn(name="bad", uid="no spaces")))
    assert err.detail and err.detail[0].loc == ["body", "uid"], err.detail
    checks += 9

    # -- event types --
    et_name = f"sdk.event.{RUN}"
    schema = {"1": {"type": "object", "properties": {"id": {"type": "string"}}}}
    et = svix.event_type.create(EventTypeIn(name=et_name, description="An SDK event", schemas=schema))
    assert et.schemas == schema
    assert svix.event_type.get(et_name).description == "An SDK event"
    listed = svix.event_type.list(EventTypeListOptions(with_content=True, include_archived=True, limit=250))
    assert any(e.name == et_name for e in listed.data)
    svix.event_type.patch(et_name, EventTypePatch(description="Patched"))
    up = svix.event_type.upsert(et_name, EventTypeUpsertIn(description="Upserted", schemas=schema))
    assert up.description == "Upserted"
    svix.event_type.delete(et_name)
    assert svix.event_type.get(et_name).archived is True
    # Creating an archived event type again brings it back.
    revived = svix.event_type.create(EventTypeIn(name=et_name, description="Back"))
    assert revived.archived is False and revived.description == "Back"
    svix.event_type.delete(et_name, EventTypeDeleteOptions(expunge=True))
    expect_status(404, lambda: svix.event_type.get(et_name))
    checks += 8
    # Feature flags and groups, as the SDK sends them.
    flagged_name = f"sdk.flagged.{RUN}"
    flagged = svix.event_type.create(
        EventTypeIn(name=flagged_name, description="Flagged", feature_flags=["beta"], group_name="Beta")
    )
    assert flagged.feature_flags == ["beta"] and flagged.group_name == "Beta", flagged
    checks += 1

    # -- endpoints --
    ep = svix.endpoint.create(
        app.id,
        EndpointIn(
            url="https://example.com/hook",
            description="SDK endpoint",
            event_types=[et_name],
            channels=["team.qa"],
            uid=f"ep-{RUN}",
            metadata={"owner": "sdk"},
        ),
    )
    assert ep.event_types == [et_name] and ep.channels == ["team.qa"]
    assert svix.endpoint.get(app.id, ep.id).url == "https://example.com/hook"
    assert svix.endpoint.get(app.id, f"ep-{RUN}").id == ep.id
    eps = svix.endpoint.list(app.id, EndpointListOptions(limit=10))
    assert [e.id for e in eps.data] == [ep.id] and eps.done
    p = svix.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=True, description="patched"))
    assert p.disabled is True and p.description == "patched"
    u = svix.endpoint.upsert(app.id, ep.id, EndpointUpsertIn(url="https://example.org/x", uid=f"ep-{RUN}"))
    assert u.url == "https://example.org/x"
    svix.endpoint.set_headers(
        app.id, ep.id, EndpointHeadersIn(headers={"X-Team": "qa", "Authorization": "Bearer s3cret"})
    )
    svix.endpoint.patch_headers(app.id, ep.id, EndpointHeadersPatchIn(headers={"X-Extra": "1"}))
    headers = svix.endpoint.get_headers(app.id, ep.id)
    assert headers.headers == {"X-Extra": "1", "X-Team": "qa"}, headers
    assert headers.sensitive == ["Authorization"], headers
    secret = svix.endpoint.get_secret(app.id, ep.id)
    assert secret.key.startswith("whsec_")
    rotated = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn())
    assert rotated.key != secret.key and svix.endpoint.get_secret(app.id, ep.id).key == rotated.key
    chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn(key=chosen))
    assert svix.endpoint.get_secret(app.id, ep.id).key == chosen
    checks += 11

    # -- send-example: the newest schema's first example, to this endpoint only --
    example_type = f"sdk.example.{RUN}"
    svix.event_type.create(
        EventTypeIn(
            name=example_type,
            description="With an example",
            schemas={"1": {"type": "object", "examples": [{"weight": 81.5}]}},
        )
    )
    sent = svix.endpoint.send_example(app.id, ep.id, EventExampleIn(event_type=example_type))
    assert sent.id.startswith("msg_") and sent.payload == {"weight": 81.5}, sent
    svix.event_type.delete(example_type, EventTypeDeleteOptions(expunge=True))
    checks += 1

    # -- messages --
    msg = svix.message.create(
        app.id,
        MessageIn(event_type=et_name, payload={"id": "42", "nested": {"a": [1, 2]}}, event_id=f"evt-{RUN}", channels=["team.qa"]),
        MessageCreateOptions(with_content=True),
    )
    assert msg.payload == {"id": "42", "nested": {"a": [1, 2]}} and msg.event_id == f"evt-{RUN}"
    expect_status(
        409,
        lambda: svix.message.create(app.id, MessageIn(event_type=et_name, payload={}, event_id=f"evt-{RUN}")),
    )
    assert svix.message.get(app.id, msg.id, MessageGetOptions(with_content=True)).payload == msg.payload
    assert svix.message.get(app.id, msg.id).payload == {}, "SDK v2 asks for no content by default"
    assert svix.message.get(app.id, f"evt-{RUN}").id == msg.id
    msgs = svix.message.list(
        app.id,
        MessageListOptions(
            event_types=[et_name],
            channel="team.qa",
            after=datetime.now(timezone.utc) - timedelta(hours=1),
            before=datetime.now(timezone.utc) + timedelta(hours=1),
        ),
    )
    assert [m.id for m in msgs.data] == [msg.id], msgs
    inline = svix.message.create(
        f"inline-{RUN}",
        MessageIn(event_type=et_name, payload={"x": 1}, application=ApplicationIn(name="Inline")),
    )
    assert svix.application.get(f"inline-{RUN}").name == "Inline" and inline.id.startswith("msg_")
    checks += 6

    # -- delivery logs: an endpoint whose host name does not resolve (`.invalid` never does), so
    # that every attempt fails at once without leaving the machine --
    logged = svix.endpoint.create(app.id, EndpointIn(url="https://unreachable.invalid/hook", uid=f"log-{RUN}"))
    sent = svix.message.create(app.id, MessageIn(event_type=et_name, payload={"n": 1}))
    deadline = time.time() + 15
    while True:
        attempts = svix.message_attempt.list_by_endpoint(
            app.id, logged.id, MessageAttemptListByEndpointOptions(with_content=True)
        )
        if attempts.data or time.time() > deadline:
            break
        time.sleep(0.1)
    attempt = attempts.data[0]
    assert attempt.msg_id == sent.id and attempt.status == MessageStatus.FAIL, attempt
    assert attempt.response_status_code == 0 and attempt.status_text == "fail"
    failed = svix.message_attempt.list_by_endpoint(
        app.id,
        logged.id,
        MessageAttemptListByEndpointOptions(
            status=MessageStatus.FAIL,
            status_code_class=StatusCodeClass.CODE_NONE,
            event_types=[et_name],
            before=datetime.now(timezone.utc) + timedelta(hours=1),
        ),
    )
    assert [a.id for a in failed.data] == [attempt.id], failed
    by_msg = svix.message_attempt.list_by_msg(
        app.id, sent.id, MessageAttemptListByMsgOptions(endpoint_id=logged.id, status=MessageStatus.FAIL)
    )
    assert [a.id for a in by_msg.data] == [attempt.id]
    assert svix.message_attempt.get(app.id, sent.id, attempt.id).id == attempt.id
    svix.message_attempt.expunge_content(app.id, sent.id, attempt.id)
    dests = svix.message_attempt.list_attempted_destinations(
        app.id, sent.id, MessageAttemptListAttemptedDestinationsOptions(limit=10)
    )
    mine = [d for d in dests.data if d.id == logged.id]
    assert len(mine) == 1 and mine[0].status in (
        MessageStatus.PENDING,
        MessageStatus.SENDING,
        MessageStatus.FAIL,
    ), dests
    sent_msgs = svix.message_attempt.list_attempted_messages(
        app.id, logged.id, MessageAttemptListAttemptedMessagesOptions(with_content=True)
    )
    assert [m.id for m in sent_msgs.data] == [sent.id] and sent_msgs.data[0].payload == {"n": 1}
    stats = svix.endpoint.get_stats(
        app.id, logged.id, EndpointGetStatsOptions(since=datetime.now(timezone.utc) - timedelta(hours=1))
    )
    assert stats.pending + stats.sending + stats.fail == 1 and stats.success == 0, stats
    attempt_stats = svix.endpoint.get_attempt_stats(app.id, logged.id)
    assert attempt_stats.fail >= 1 and attempt_stats.success == 0, attempt_stats
    # Tags and `with_msg`: the SDK's own filters and models.
    tagged = svix.message.create(app.id, MessageIn(event_type=et_name, payload={"t": 1}, tags=[f"tag-{RUN}"]))
    assert tagged.tags == [f"tag-{RUN}"], tagged
    assert [m.id for m in svix.message.list(app.id, MessageListOptions(tag=f"tag-{RUN}")).data] == [tagged.id]
    deadline = time.time() + 15
    while True:
        with_msg = svix.message_attempt.list_by_endpoint(
            app.id, logged.id, MessageAttemptListByEndpointOptions(tag=f"tag-{RUN}", with_msg=True)
        )
        if with_msg.data or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [a.msg_id for a in with_msg.data] == [tagged.id], with_msg
    assert with_msg.data[0].msg is not None and with_msg.data[0].msg.tags == [f"tag-{RUN}"]
    checks += 3
    svix.message.expunge_content(app.id, sent.id)
    assert svix.message.get(app.id, sent.id, MessageGetOptions(with_content=True)).payload == {}
    svix.endpoint.delete(app.id, logged.id)
    checks += 9

    # -- scheduled messages: held until `deliverAt`, at most five days ahead --
    at = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    later = svix.message.create(app.id, MessageIn(event_type=et_name, payload={}, deliver_at=at))
    assert later.deliver_at == at, later
    assert svix.message.get(app.id, later.id).deliver_at == at
    err = expect_status(
        422,
        lambda: svix.message.create(
            app.id, MessageIn(event_type=et_name, payload={}, deliver_at=at + timedelta(days=6))
        ),
    )
    assert err.detail[0].loc == ["body", "deliverAt"], err.detail
    # A field Herald does not implement is refused by name, not dropped.
    err = expect_status(
        422,
        lambda: svix.message.create(app.id, MessageIn(event_type=et_name, payload={}, payload_retention_hours=5)),
    )
    assert err.detail[0].loc == ["body", "payloadRetentionHours"], err.detail
    checks += 4

    # -- precheck: would any enabled endpoint get such a message? --
    # `app` has an endpoint for every event type (replaced by the upsert above); the other none.
    assert svix.message.precheck(app.id, MessagePrecheckIn(event_type=f"any.{RUN}")).active is True
    assert svix.message.precheck(created_by_put.id, MessagePrecheckIn(event_type=f"any.{RUN}")).active is False
    checks += 2

    # -- operational webhook endpoint headers --
    ops = svix.operational_webhook.endpoint.create(OperationalWebhookEndpointIn(url="https://example.com/ops"))
    svix.operational_webhook.endpoint.set_headers(ops.id, OperationalWebhookEndpointHeadersIn(headers={"X-Pager": "ops"}))
    assert svix.operational_webhook.endpoint.get_headers(ops.id).headers == {"X-Pager": "ops"}
    svix.operational_webhook.endpoint.delete(ops.id)
    checks += 1

    # -- background tasks: recover, replays, purge and statistics, followed to their end --
    svix.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=False))
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    until = datetime.now(timezone.utc) + timedelta(minutes=1)
    started = [
        svix.endpoint.recover(app.id, ep.id, RecoverIn(since=since)),
        svix.endpoint.replay_missing(app.id, ep.id, ReplayIn(since=since)),
        svix.endpoint.bulk_replay(
            app.id, ep.id, BulkReplayIn(since=since, event_types=[et_name], status=MessageStatus.FAIL)
        ),
        svix.message.expunge_all_contents(created_by_put.id),
        svix.statistics.aggregate_app_stats(AppUsageStatsIn(since=since, until=until, app_ids=[app.id])),
        svix.statistics.aggregate_event_types(),
    ]
    assert [s.task for s in started] == [
        BackgroundTaskType.ENDPOINT_RECOVER,
        BackgroundTaskType.ENDPOINT_REPLAY,
        BackgroundTaskType.ENDPOINT_BULK_REPLAY,
        BackgroundTaskType.APPLICATION_PURGE_CONTENT,
        BackgroundTaskType.APPLICATION_STATS,
        BackgroundTaskType.EVENT_TYPE_AGGREGATE,
    ], started
    assert all(s.id.startswith("qtask_") for s in started)
    for s in started:
        deadline = time.time() + 20
        task = svix.background_task.get(s.id)
        while task.status == BackgroundTaskStatus.RUNNING and time.time() < deadline:
            time.sleep(0.05)
            task = svix.background_task.get(s.id)
        assert task.status == BackgroundTaskStatus.FINISHED, task
    stats = svix.background_task.get(started[4].id)
    assert stats.data["appStats"][0]["appId"] == app.id, stats
    assert "messageDestinations" in stats.data["appStats"][0], stats
    replays = svix.background_task.list(BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_REPLAY))
    assert started[1].id in [t.id for t in replays.data]
    expunged = svix.message.bulk_expunge_content(app.id, BulkExpungeContentsIn(ids=[msg.id, f"none-{RUN}"]))
    assert {k: str(v) for k, v in expunged.results.items()} == {msg.id: "expunged", f"none-{RUN}": "not-found"}, expunged
    checks += 6

    # -- integrations: a key for a third party, limited to the application's endpoints --
    integ = svix.integration.create(app.id, IntegrationIn(name=f"integ-{RUN}"))
    assert integ.id.startswith("integ_") and integ.name == f"integ-{RUN}"
    assert [i.id for i in svix.integration.list(app.id).data] == [integ.id]
    assert svix.integration.update(app.id, integ.id, IntegrationUpdate(name="renamed")).name == "renamed"
    assert svix.integration.get(app.id, integ.id).name == "renamed"
    integ_key = svix.integration.rotate_key(app.id, integ.id).key
    third_party = client(integ_key)
    assert [e.id for e in third_party.endpoint.list(app.id).data] == [e.id for e in svix.endpoint.list(app.id).data]
    expect_status(403, lambda: third_party.message.create(app.id, MessageIn(event_type=et_name, payload={})))
    svix.integration.delete(app.id, integ.id)
    expect_status(401, lambda: third_party.endpoint.list(app.id))
    checks += 7

    # -- environments: the catalogue out, and back in --
    exported = svix.environment.export()
    assert flagged_name in [e.name for e in exported.event_types], exported
    svix.environment.import_(EnvironmentIn(event_types=[EventTypeIn(name=f"sdk.env.{RUN}", description="From a file")]))
    assert svix.event_type.get(f"sdk.env.{RUN}").description == "From a file"
    svix.event_type.delete(f"sdk.env.{RUN}", EventTypeDeleteOptions(expunge=True))
    checks += 2

    # -- event types from an OpenAPI document's webhooks --
    imported = f"sdk.openapi.{RUN}"
    spec = {
        "openapi": "3.1.0",
        "webhooks": {
            imported: {
                "post": {
                    "summary": "Imported",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/P"}}}},
                }
            }
        },
        "components": {"schemas": {"P": {"type": "object"}}},
    }
    dry = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec=spec, dry_run=True))
    assert dry.data.modified == [] and [e.name for e in dry.data.to_modify] == [imported], dry
    expect_status(404, lambda: svix.event_type.get(imported))
    done = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=f"openapi: 3.1.0\nwebhooks:\n  {imported}:\n    post:\n      summary: Imported\n"))
    assert done.data.modified == [imported], done
    assert svix.event_type.get(imported).description == "Imported"
    svix.event_type.delete(imported, EventTypeDeleteOptions(expunge=True))
    checks += 4

    # -- portal access and logout --
    access = svix.authentication.app_portal_access(app.id, AppPortalAccessIn())
    assert access.url.endswith(access.token) and "/portal" in access.url
    portal = client(access.token)
    assert portal.application.get(app.id).id == app.id
    expect_status(404, lambda: portal.application.get(created_by_put.id))
    # A flagged event type is visible only to portal tokens with its flag.
    assert flagged_name not in [e.name for e in portal.event_type.list(EventTypeListOptions(limit=250)).data]
    beta = client(svix.authentication.app_portal_access(app.id, AppPortalAccessIn(feature_flags=["beta"])).token)
    assert flagged_name in [e.name for e in beta.event_type.list(EventTypeListOptions(limit=250)).data]
    svix.event_type.delete(flagged_name, EventTypeDeleteOptions(expunge=True))
    portal.authentication.logout()
    expect_status(401, lambda: portal.application.get(app.id))
    checks += 6

    # -- clean up --
    svix.endpoint.delete(app.id, ep.id)
    expect_status(404, lambda: svix.endpoint.get(app.id, ep.id))
    for a in (app.id, created_by_put.id, f"inline-{RUN}"):
        svix.application.delete(a)
    expect_status(404, lambda: svix.application.get(app.id))
    checks += 3

    print(f"svix python sdk: {checks} checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure with its type
        print(f"svix python sdk: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        raise
