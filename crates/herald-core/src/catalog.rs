//! The seed systems' event catalogues (Kobiton, Electric Imp, Impilo, Ideavate), built in, so
//! a platform gets their event types with JSON schemas and examples in one call
//! (`POST /api/v1/event-type/import`, `herald catalog import`). The data lives in
//! `crates/herald-core/catalogs/*.json`, each example checked against its schema when written.

use serde::Deserialize;
use serde_json::Value;

/// One built-in catalogue: a seed system's event types, as stored in `catalogs/<name>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// The catalogue's name, one of [`NAMES`] (`kobiton`, …).
    pub catalog: String,
    /// A one-line human title (“Kobiton device status webhooks”).
    pub title: String,
    /// Where the event types and schemas come from (the vendor documentation they follow).
    pub source: String,
    /// The event types the import creates (as schema version `1`); existing ones are left alone.
    pub event_types: Vec<CatalogEventType>,
}

/// One event type of a catalogue, imported as an [`EventType`](crate::model::EventType).
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEventType {
    /// The event type's name (`device.status.online`); a valid identifier.
    pub name: String,
    /// What the event means, copied to the event type's description.
    pub description: String,
    /// A JSON Schema with an `examples` array.
    pub schema: Value,
}

/// The names accepted by [`find`].
pub const NAMES: [&str; 4] = ["kobiton", "electric-imp", "impilo", "ideavate"];

fn source(name: &str) -> Option<&'static str> {
    Some(match name {
        "kobiton" => include_str!("../catalogs/kobiton.json"),
        "electric-imp" => include_str!("../catalogs/electric-imp.json"),
        "impilo" => include_str!("../catalogs/impilo.json"),
        "ideavate" => include_str!("../catalogs/ideavate.json"),
        _ => return None,
    })
}

/// A built-in catalogue by name.
pub fn find(name: &str) -> Option<Catalog> {
    let text = source(name)?;
    Some(serde_json::from_str(text).expect("built-in catalogues are valid (tested)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_parses_with_examples() {
        let mut total = 0;
        for name in NAMES {
            let catalog = find(name).unwrap();
            assert_eq!(catalog.catalog, name);
            for et in &catalog.event_types {
                assert!(crate::validate::is_identifier(&et.name), "{}", et.name);
                let examples = et.schema["examples"].as_array().unwrap();
                assert!(!examples.is_empty(), "{}", et.name);
                total += 1;
            }
        }
        assert_eq!(total, 4 + 2 + 16 + 9);
        assert!(find("unknown").is_none());
        // Kobiton's status events are exactly the ones the device rules publish.
        let kobiton: Vec<String> = find("kobiton")
            .unwrap()
            .event_types
            .into_iter()
            .map(|e| e.name)
            .collect();
        for status in crate::device::DeviceStatus::ALL {
            assert!(kobiton.iter().any(|n| n == status.event_type()));
        }
    }
}
