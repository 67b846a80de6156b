//! Maps whose keys must be unique.
//!
//! serde's maps keep the last of two entries with the same key, so a catalog with two `api:`
//! services, or a fleet that names `api` twice, would load with one of them silently dropped.
//! Every map Serin reads from a document is read with [`unique_map`] instead, which refuses
//! the second entry and names it.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, Error, MapAccess, Visitor};

/// Reads a map in which no key appears twice; `path` names the map in the error (`services`),
/// which names the repeated key after it (`duplicate key services.api`).
pub(crate) fn unique_map<'de, D, K, V>(d: D, path: &str) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct Unique<'p, K, V> {
        path: &'p str,
        entries: PhantomData<(K, V)>,
    }

    impl<'de, K, V> Visitor<'de> for Unique<'_, K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a map ({})", self.path)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<K>()? {
                if out.contains_key(&key) {
                    return Err(A::Error::custom(format!(
                        "duplicate key {}.{key}: each key may appear only once",
                        self.path
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    d.deserialize_map(Unique {
        path,
        entries: PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "names")]
        names: BTreeMap<String, u32>,
    }

    fn names<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u32>, D::Error> {
        unique_map(d, "names")
    }

    #[test]
    fn a_repeated_key_is_refused_by_name() {
        let doc: Doc = serde_json::from_str(r#"{"names": {"a": 1, "b": 2}}"#).unwrap();
        assert_eq!(doc.names.len(), 2);
        let err = serde_json::from_str::<Doc>(r#"{"names": {"a": 1, "a": 2}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("duplicate key names.a: each key"), "{err}");
        let err = serde_yaml_ng::from_str::<Doc>("names:\n  a: 1\n  a: 2\n")
            .err()
            .unwrap()
            .to_string();
        // serde_yaml_ng puts the path in front.
        assert!(
            err.starts_with("names: duplicate key names.a: each key"),
            "{err}"
        );
    }
}
