//! Enums with data written as people write them: a map with one key (`setWeight: 20`,
//! `{"batched": {...}}`), where serde's own form in YAML would be a tag (`!setWeight 20`),
//! which `serde_yaml_ng` alone reads and writes. Compact binary forms keep serde's own variant,
//! which their readers expect. The types' own `Deserialize` reads both forms with these.

use serde::Serialize;
use serde::de::{Error as _, MapAccess};
use serde::ser::SerializeMap as _;

/// Writes variant `index` of enum `name` (its kinds' names `kinds`) holding `value`: a map with
/// one key where people read it, serde's newtype variant otherwise.
pub(crate) fn write<S: serde::Serializer, T: Serialize>(
    s: S,
    name: &'static str,
    kinds: &'static [&'static str],
    index: u32,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let kind = kinds[index as usize];
    if !s.is_human_readable() {
        return s.serialize_newtype_variant(name, index, kind, value);
    }
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(kind, value)?;
    map.end()
}

/// Refuses a key after `kind` in the map of one `what` (`a step`): each holds one kind.
pub(crate) fn no_more<'de, A: MapAccess<'de>>(
    map: &mut A,
    what: &str,
    kind: &str,
) -> Result<(), A::Error> {
    match map.next_key::<String>()? {
        Some(more) => Err(A::Error::custom(format_args!(
            "{what} has one key, `{kind}`; `{more}` is one too many"
        ))),
        None => Ok(()),
    }
}
