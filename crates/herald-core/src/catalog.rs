//! The seed systems' event catalogues (Kobiton, Electric Imp, Impilo, Ideavate), built in, so
//! a platform gets their event types with JSON schemas and examples in one call
//! (`POST /api/v1/event-type/import`, `herald catalog import`). The data lives in
//! `crates/herald-core/catalogs/*.json`, each example checked against its schema when written.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    pub catalog: String,
    pub title: String,
    pub source: String,
    pub event_types: Vec<CatalogEventType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEventType {
    pub name: String,
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
