// The portable SQL of `DeviceStore`, `include!`d by `common.rs` (it uses that file's helpers).
// A status report or lifecycle fact locks its device row for the transaction where the engine
// locks rows (`Dialect::LOCKS_ROWS`), so reports for one device serialize.

use crate::device::{DeviceFilter, DeviceStore, Lifecycle, StatusRecorded, StatusReport};
use herald_core::device::{
    Device, DeviceGroup, DeviceKind, DeviceStatus, DeviceTransition, StatusOutcome,
};

const DEVICE_COLUMNS: &str = "app_id, id, name, kind, device_group, teams, bundles, status, \
     status_at, metadata, imp_id, blessed_at, activated_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DeviceRow {
    app_id: String,
    id: String,
    name: String,
    kind: String,
    device_group: Option<String>,
    teams: String,
    bundles: String,
    status: Option<String>,
    status_at: Option<i64>,
    metadata: String,
    imp_id: Option<String>,
    blessed_at: Option<i64>,
    activated_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column}: {value:?}"))
}

fn json_column<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn opt_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;
    fn try_from(r: DeviceRow) -> Result<Self> {
        Ok(Device {
            kind: DeviceKind::parse(&r.kind).ok_or_else(|| corrupt("kind", &r.kind))?,
            status: r
                .status
                .as_deref()
                .map(|s| DeviceStatus::parse(s).ok_or_else(|| corrupt("status", s)))
                .transpose()?,
            app_id: herald_core::id::Id::from_trusted(r.app_id),
            id: r.id,
            name: r.name,
            group: r.device_group,
            teams: json_column("teams", &r.teams)?,
            bundles: json_column("bundles", &r.bundles)?,
            status_at: opt_time(r.status_at)?,
            metadata: json_column("metadata", &r.metadata)?,
            imp_id: r.imp_id,
            blessed_at: opt_time(r.blessed_at)?,
            activated_at: opt_time(r.activated_at)?,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    seq_key: String,
    from_status: Option<String>,
    to_status: String,
    outcome: String,
    at: i64,
    msg_id: Option<String>,
}

impl TryFrom<TransitionRow> for DeviceTransition {
    type Error = StoreError;
    fn try_from(r: TransitionRow) -> Result<Self> {
        let status = |s: &str| DeviceStatus::parse(s).ok_or_else(|| corrupt("status", s));
        Ok(DeviceTransition {
            seq: r.seq_key.parse().map_err(|_| corrupt("seq_key", &r.seq_key))?,
            from: r.from_status.as_deref().map(status).transpose()?,
            to: status(&r.to_status)?,
            outcome: StatusOutcome::parse(&r.outcome).ok_or_else(|| corrupt("outcome", &r.outcome))?,
            at: time(r.at)?,
            msg_id: r.msg_id.map(herald_core::id::Id::from_trusted),
        })
    }
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    app_id: String,
    name: String,
    test: bool,
    allow_unblessed_activation: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<GroupRow> for DeviceGroup {
    type Error = StoreError;
    fn try_from(r: GroupRow) -> Result<Self> {
        Ok(DeviceGroup {
            app_id: herald_core::id::Id::from_trusted(r.app_id),
            name: r.name,
            test: r.test,
            allow_unblessed_activation: r.allow_unblessed_activation,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

/// History keys sort as text in sequence order on every engine.
fn seq_key(seq: i64) -> String {
    format!("{seq:012}")
}

/// The tags a device is found by: `team:<t>`, `bundle:<b>`, `meta:<key>=<value>`.
fn device_tags(device: &Device) -> Vec<String> {
    device
        .teams
        .iter()
        .map(|t| format!("team:{t}"))
        .chain(device.bundles.iter().map(|b| format!("bundle:{b}")))
        .chain(device.metadata.iter().map(|(k, v)| format!("meta:{k}={v}")))
        .collect()
}

async fn lock_device(
    tx: &mut <Db as sqlx::Database>::Connection,
    app: &AppId,
    id: &str,
) -> Result<(Device, i64)> {
    let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT history_seq FROM devices WHERE app_id = $1 AND id = $2{FOR_UPDATE}"
    )))
        .bind(app.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((history_seq,)) = row else {
        return Err(StoreError::NotFound);
    };
    let device: DeviceRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE app_id = $1 AND id = $2"
    )))
    .bind(app.as_str())
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok((Device::try_from(device)?, history_seq))
}

/// A device event as a message, stored and fanned out in the caller's transaction.
async fn publish_device_event(
    tx: &mut <Db as sqlx::Database>::Connection,
    app: &AppId,
    event_type: &str,
    channels: Option<Vec<String>>,
    payload: serde_json::Value,
    retention: Duration,
) -> Result<(Message, Vec<EndpointId>)> {
    let id = MessageId::generate();
    let created_at = id.timestamp().unwrap_or_else(herald_core::time::now);
    // Taken in this transaction, so the number and the event commit together. On Postgres the
    // counter row stays locked until the commit: device transactions are short and few next
    // to publishes, which take their numbers in blocks outside any transaction.
    let serial: i64 =
        sqlx::query_scalar("UPDATE serials SET next = next + 1 WHERE kind = $1 RETURNING next - 1")
            .bind(crate::SerialKind::Message.key())
            .fetch_one(&mut *tx)
            .await?;
    let message = Message {
        id,
        app_id: app.clone(),
        serial,
        event_type: event_type.to_owned(),
        event_id: None,
        channels: channels.filter(|c| !c.is_empty()),
        payload: Some(payload.to_string()),
        created_at,
        payload_expires_at: created_at
            + chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90)),
        deliver_at: None,
        tags: None,
    };
    let matched = insert_message_in(tx, &message, None).await?;
    Ok((message, matched))
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn put_device_group(&self, group: &DeviceGroup) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_groups (app_id, name, test, allow_unblessed_activation,
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (app_id, name) DO UPDATE SET test = excluded.test,
               allow_unblessed_activation = excluded.allow_unblessed_activation,
               updated_at = excluded.updated_at",
        )
        .bind(group.app_id.as_str())
        .bind(&group.name)
        .bind(group.test)
        .bind(group.allow_unblessed_activation)
        .bind(millis(group.created_at))
        .bind(millis(group.updated_at))
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    async fn get_device_group(&self, app: &AppId, name: &str) -> Result<Option<DeviceGroup>> {
        let row: Option<GroupRow> = sqlx::query_as(
            "SELECT app_id, name, test, allow_unblessed_activation, created_at, updated_at
             FROM device_groups WHERE app_id = $1 AND name = $2",
        )
        .bind(app.as_str())
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(DeviceGroup::try_from).transpose()
    }

    async fn list_device_groups(&self, app: &AppId) -> Result<Vec<DeviceGroup>> {
        let rows: Vec<GroupRow> = sqlx::query_as(
            "SELECT app_id, name, test, allow_unblessed_activation, created_at, updated_at
             FROM device_groups WHERE app_id = $1 ORDER BY name",
        )
        .bind(app.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(DeviceGroup::try_from).collect()
    }

    async fn delete_device_group(&self, app: &AppId, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM device_groups WHERE app_id = $1 AND name = $2")
            .bind(app.as_str())
            .bind(name)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_device(&self, device: &Device) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        let updated = sqlx::query(
            "UPDATE devices SET name = $3, kind = $4, device_group = $5, teams = $6,
             bundles = $7, metadata = $8, updated_at = $9 WHERE app_id = $1 AND id = $2",
        )
        .bind(device.app_id.as_str())
        .bind(&device.id)
        .bind(&device.name)
        .bind(device.kind.as_str())
        .bind(device.group.as_deref())
        .bind(to_json(&device.teams))
        .bind(to_json(&device.bundles))
        .bind(to_json(&device.metadata))
        .bind(millis(device.updated_at))
        .execute(&mut *tx)
        .await?;
        let created = updated.rows_affected() == 0;
        if created {
            sqlx::query(
                "INSERT INTO devices (app_id, id, name, kind, device_group, teams, bundles,
                 metadata, history_seq, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)",
            )
            .bind(device.app_id.as_str())
            .bind(&device.id)
            .bind(&device.name)
            .bind(device.kind.as_str())
            .bind(device.group.as_deref())
            .bind(to_json(&device.teams))
            .bind(to_json(&device.bundles))
            .bind(to_json(&device.metadata))
            .bind(millis(device.created_at))
            .bind(millis(device.updated_at))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM device_tags WHERE app_id = $1 AND device_id = $2")
            .bind(device.app_id.as_str())
            .bind(&device.id)
            .execute(&mut *tx)
            .await?;
        let tags = device_tags(device);
        for chunk in tags.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new("INSERT INTO device_tags (app_id, device_id, tag) ");
            qb.push_values(chunk, |mut row, tag| {
                row.push_bind(device.app_id.as_str().to_owned())
                    .push_bind(device.id.clone())
                    .push_bind(tag.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn get_device(&self, app: &AppId, id: &str) -> Result<Option<Device>> {
        let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE app_id = $1 AND id = $2"
        )))
        .bind(app.as_str())
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Device::try_from).transpose()
    }

    async fn delete_device(&self, app: &AppId, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_devices(
        &self,
        app: &AppId,
        filter: &DeviceFilter,
        params: &ListParams,
    ) -> Result<Page<Device>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        if let Some(name) = &filter.name {
            let escaped = name.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            qb.push(" AND name LIKE ")
                .push_bind(format!("{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        if let Some(kind) = filter.kind {
            qb.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(group) = &filter.group {
            qb.push(" AND device_group = ").push_bind(group.clone());
        }
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        let tags = filter
            .teams
            .iter()
            .map(|t| format!("team:{t}"))
            .chain(filter.bundles.iter().map(|b| format!("bundle:{b}")))
            .chain(filter.metadata.iter().map(|(k, v)| format!("meta:{k}={v}")));
        for tag in tags {
            qb.push(
                " AND EXISTS (SELECT 1 FROM device_tags t WHERE t.app_id = devices.app_id \
                 AND t.device_id = devices.id AND t.tag = ",
            )
            .push_bind(tag)
            .push(")");
        }
        fetch_page::<DeviceRow, _>(&self.reader, qb, "id", params).await
    }

    async fn device_history(
        &self,
        app: &AppId,
        id: &str,
        params: &ListParams,
    ) -> Result<Page<DeviceTransition>> {
        let mut qb = QueryBuilder::new(
            "SELECT seq_key, from_status, to_status, outcome, at, msg_id FROM device_history \
             WHERE app_id = ",
        );
        qb.push_bind(app.as_str().to_owned())
            .push(" AND device_id = ")
            .push_bind(id.to_owned());
        fetch_page::<TransitionRow, _>(&self.reader, qb, "seq_key", params).await
    }

    async fn report_device_status(&self, report: &StatusReport<'_>) -> Result<StatusRecorded> {
        let mut tx = WriteTx::begin(self).await?;
        let (mut device, history_seq) = lock_device(&mut tx, report.app, report.device_id).await?;
        let outcome = herald_core::device::transition(device.kind, device.status, report.status);
        let mut published = None;
        if outcome.changes() {
            if outcome == StatusOutcome::Published {
                let payload = herald_core::device::status_payload(
                    &device,
                    report.org_id,
                    report.status,
                    report.at,
                );
                let channels = Some(device.channels());
                published = Some(
                    publish_device_event(
                        &mut tx,
                        report.app,
                        report.status.event_type(),
                        channels,
                        payload,
                        report.retention,
                    )
                    .await?,
                );
            }
            let seq = history_seq + 1;
            sqlx::query(
                "INSERT INTO device_history (app_id, device_id, seq_key, from_status, to_status,
                 outcome, at, msg_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(report.app.as_str())
            .bind(report.device_id)
            .bind(seq_key(seq))
            .bind(device.status.map(DeviceStatus::as_str))
            .bind(report.status.as_str())
            .bind(outcome.as_str())
            .bind(millis(report.at))
            .bind(published.as_ref().map(|(m, _): &(Message, _)| m.id.as_str().to_owned()))
            .execute(&mut *tx)
            .await?;
            let now = herald_core::time::now();
            sqlx::query(
                "UPDATE devices SET status = $3, status_at = $4, history_seq = $5, updated_at = $6
                 WHERE app_id = $1 AND id = $2",
            )
            .bind(report.app.as_str())
            .bind(report.device_id)
            .bind(report.status.as_str())
            .bind(millis(report.at))
            .bind(seq)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            device.status = Some(report.status);
            device.status_at = Some(report.at);
            device.updated_at = now;
        }
        tx.commit().await?;
        if let Some((_, matched)) = &published {
            let ids: Vec<&str> = matched.iter().map(|e| e.as_str()).collect();
            self.announce(&ids);
        }
        Ok(StatusRecorded {
            outcome,
            device,
            published,
        })
    }

    async fn record_lifecycle(
        &self,
        app: &AppId,
        device_id: &str,
        fact: &Lifecycle<'_>,
        at: DateTime<Utc>,
        retention: Duration,
    ) -> Result<(Device, Message, Vec<EndpointId>)> {
        let mut tx = WriteTx::begin(self).await?;
        let (mut device, _) = lock_device(&mut tx, app, device_id).await?;
        let (event_type, payload) = match fact {
            Lifecycle::Bless { imp_id } => {
                if device.blessed_at.is_some() {
                    return Err(StoreError::Conflict("the device is already blessed"));
                }
                sqlx::query(
                    "UPDATE devices SET imp_id = $3, blessed_at = $4 WHERE app_id = $1 AND id = $2",
                )
                .bind(app.as_str())
                .bind(device_id)
                .bind(*imp_id)
                .bind(millis(at))
                .execute(&mut *tx)
                .await?;
                device.imp_id = Some((*imp_id).to_owned());
                device.blessed_at = Some(at);
                ("blessing", herald_core::device::blessing_payload(device_id, imp_id))
            }
            Lifecycle::Activate { plan_id, token } => {
                if device.blessed_at.is_none() {
                    let allowed: Option<(bool,)> = sqlx::query_as(
                        "SELECT allow_unblessed_activation FROM device_groups
                         WHERE app_id = $1 AND name = $2",
                    )
                    .bind(app.as_str())
                    .bind(device.group.as_deref())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if !allowed.is_some_and(|(a,)| a) {
                        return Err(StoreError::Conflict(
                            "the device is not blessed, and its group does not allow activating unblessed devices",
                        ));
                    }
                }
                sqlx::query("UPDATE devices SET activated_at = $3 WHERE app_id = $1 AND id = $2")
                    .bind(app.as_str())
                    .bind(device_id)
                    .bind(millis(at))
                    .execute(&mut *tx)
                    .await?;
                device.activated_at = Some(at);
                (
                    "blinkup",
                    herald_core::device::blinkup_payload(device_id, plan_id, token),
                )
            }
        };
        let (message, matched) = publish_device_event(
            &mut tx,
            app,
            event_type,
            device.group_channels(),
            payload,
            retention,
        )
        .await?;
        tx.commit().await?;
        let ids: Vec<&str> = matched.iter().map(|e| e.as_str()).collect();
        self.announce(&ids);
        Ok((device, message, matched))
    }
}
