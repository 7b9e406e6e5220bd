//! Devices: the registry with its tag filters, status reports applied with their history and
//! events in one transaction, lifecycle facts, and device groups.

use herald_core::device::{Device, DeviceGroup, DeviceKind, DeviceStatus, StatusOutcome};
use herald_core::page::{ListParams, Order};
use herald_core::token::random_base62;

use super::sample_app;
use crate::{DeviceFilter, Lifecycle, StatusReport, Store, StoreError};

const RETENTION: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Devices: filters, status reports (published, silent, unchanged, disallowed) with their
/// history, replacing a device keeping its status, lifecycle facts, groups, and deletion.
pub async fn devices(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let now = herald_core::time::now();
    let device = |id: &str, kind: DeviceKind, teams: &[&str]| Device {
        id: id.to_owned(),
        app_id: app.id.clone(),
        name: format!("Device {id}"),
        kind,
        group: Some("g1".into()),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        bundles: vec![],
        status: None,
        status_at: None,
        metadata: [("os".to_owned(), "android".to_owned())].into(),
        imp_id: None,
        blessed_at: None,
        activated_at: None,
        created_at: now,
        updated_at: now,
    };
    let id = format!("d-{}", random_base62(6));
    assert!(
        store
            .put_device(&device(&id, DeviceKind::Private, &["qa"]))
            .await
            .unwrap()
    );
    let other = format!("e-{}", random_base62(6));
    assert!(
        store
            .put_device(&device(&other, DeviceKind::Public, &["ops"]))
            .await
            .unwrap()
    );

    let filter = DeviceFilter {
        teams: vec!["qa".into()],
        metadata: vec![("os".into(), "android".into())],
        ..Default::default()
    };
    let page = store
        .list_devices(&app.id, &filter, &ListParams::first(50, Order::Ascending))
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()]
    );

    let org = Some(42);
    let send = |device_id: String, status: DeviceStatus| {
        let app_id = app.id.clone();
        async move {
            store
                .report_device_status(&StatusReport {
                    app: &app_id,
                    device_id: &device_id,
                    status,
                    at: herald_core::time::now(),
                    org_id: org,
                    retention: RETENTION,
                })
                .await
        }
    };
    let first = send(id.clone(), DeviceStatus::Utilizing).await.unwrap();
    assert_eq!(first.outcome, StatusOutcome::Published);
    let (message, _) = first.published.unwrap();
    assert_eq!(message.event_type, "device.state.utilizing");
    assert_eq!(
        message.channels,
        Some(vec!["group:g1".to_owned(), "team:qa".to_owned()])
    );
    assert!(
        store
            .get_message(&app.id, &message.id)
            .await
            .unwrap()
            .is_some()
    );
    let disallowed = send(id.clone(), DeviceStatus::Online).await.unwrap();
    assert_eq!(disallowed.outcome, StatusOutcome::Disallowed);
    assert!(disallowed.published.is_none());
    let unchanged = send(id.clone(), DeviceStatus::Utilizing).await.unwrap();
    assert_eq!(unchanged.outcome, StatusOutcome::Unchanged);
    let silent = send(other.clone(), DeviceStatus::Offline).await.unwrap();
    assert_eq!(silent.outcome, StatusOutcome::ChangedSilently);
    assert!(silent.published.is_none());
    assert_eq!(silent.device.status, Some(DeviceStatus::Offline));
    assert!(matches!(
        send("missing".into(), DeviceStatus::Online).await,
        Err(StoreError::NotFound)
    ));
    let history = store
        .device_history(&app.id, &id, &ListParams::first(50, Order::Ascending))
        .await
        .unwrap();
    assert_eq!(history.items.len(), 1);
    assert_eq!(history.items[0].seq, 1);
    assert_eq!(history.items[0].msg_id, Some(message.id.clone()));

    // Replacing the description keeps the status.
    let mut renamed = device(&id, DeviceKind::Local, &[]);
    renamed.name = "Renamed".into();
    assert!(!store.put_device(&renamed).await.unwrap());
    let stored = store.get_device(&app.id, &id).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.status),
        ("Renamed", Some(DeviceStatus::Utilizing))
    );

    // Lifecycle: bless once; activation needs a blessing unless the group allows it.
    let at = herald_core::time::now();
    let activate = Lifecycle::Activate {
        plan_id: "p",
        token: "t",
    };
    assert!(matches!(
        store
            .record_lifecycle(&app.id, &other, &activate, at, RETENTION)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let bless = Lifecycle::Bless { imp_id: "imp1" };
    let (blessed, msg, _) = store
        .record_lifecycle(&app.id, &id, &bless, at, RETENTION)
        .await
        .unwrap();
    assert_eq!(blessed.imp_id.as_deref(), Some("imp1"));
    assert_eq!(msg.event_type, "blessing");
    assert_eq!(msg.channels, Some(vec!["group:g1".to_owned()]));
    assert!(matches!(
        store
            .record_lifecycle(&app.id, &id, &bless, at, RETENTION)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .put_device_group(&DeviceGroup {
            app_id: app.id.clone(),
            name: "g1".into(),
            test: true,
            allow_unblessed_activation: true,
            created_at: at,
            updated_at: at,
        })
        .await
        .unwrap();
    let (_, msg, _) = store
        .record_lifecycle(&app.id, &other, &activate, at, RETENTION)
        .await
        .unwrap();
    assert_eq!(msg.event_type, "blinkup");
    assert_eq!(store.list_device_groups(&app.id).await.unwrap().len(), 1);

    assert!(store.delete_device(&app.id, &id).await.unwrap());
    assert!(store.get_device(&app.id, &id).await.unwrap().is_none());
    assert!(store.delete_device_group(&app.id, "g1").await.unwrap());
}
