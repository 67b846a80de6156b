//! Enums with data written as people write them: a map with one key (`setWeight: 20`,
//! `{"batched": {...}}`), where serde's own form in YAML would be a tag (`!setWeight 20`),
//! which `serde_yaml_ng` alone reads and writes. Compact binary forms keep serde's own variant,
//! which their readers expect. The types' own `Deserialize` reads both forms with these.

use std::marker::PhantomData;

use serde::de::{EnumAccess, Error as _, MapAccess, VariantAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize};

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

/// An enum whose every kind holds one value, written with [`write`] and read with [`read`].
pub(crate) trait OneKey: Sized {
    /// The enum's name, as serde's own form gives it.
    const NAME: &'static str;
    /// The names of its kinds, as written, in the order of their indices.
    const KINDS: &'static [&'static str];
    /// What one is, for errors (`a count mode`).
    const WHAT: &'static str;

    /// Reads the value of the kind at `index` in `KINDS`.
    fn value<'de, V: Value<'de>>(index: usize, value: V) -> Result<Self, V::Error>;
}

/// Where the value of a kind comes from: a map's entry or serde's own variant.
pub(crate) trait Value<'de> {
    type Error: serde::de::Error;

    fn read<T: Deserialize<'de>>(self) -> Result<T, Self::Error>;
}

struct MapValue<'a, A>(&'a mut A);

impl<'de, A: MapAccess<'de>> Value<'de> for MapValue<'_, A> {
    type Error = A::Error;

    fn read<T: Deserialize<'de>>(self) -> Result<T, A::Error> {
        self.0.next_value()
    }
}

struct VariantValue<V>(V);

impl<'de, V: VariantAccess<'de>> Value<'de> for VariantValue<V> {
    type Error = V::Error;

    fn read<T: Deserialize<'de>>(self) -> Result<T, V::Error> {
        self.0.newtype_variant()
    }
}

/// Reads a `T` written by [`write`]: a map with one key where people read it (serde's own form,
/// a YAML tag, too), serde's own variant otherwise.
pub(crate) fn read<'de, D: Deserializer<'de>, T: OneKey>(d: D) -> Result<T, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(OneKeyVisitor(PhantomData))
    } else {
        d.deserialize_enum(T::NAME, T::KINDS, OneKeyVisitor(PhantomData))
    }
}

struct OneKeyVisitor<T>(PhantomData<T>);

impl<T: OneKey> OneKeyVisitor<T> {
    fn index<E: serde::de::Error>(kind: &str) -> Result<usize, E> {
        T::KINDS
            .iter()
            .position(|k| *k == kind)
            .ok_or_else(|| E::unknown_variant(kind, T::KINDS))
    }
}

impl<'de, T: OneKey> Visitor<'de> for OneKeyVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `a count mode: a map with one key, `perRequest` or `batched``
        write!(f, "{}: a map with one key, ", T::WHAT)?;
        for (i, kind) in T::KINDS.iter().enumerate() {
            let sep = match i {
                0 => "",
                _ if i + 1 == T::KINDS.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}`{kind}`")?;
        }
        Ok(())
    }

    /// `{batched: {alpha: 0.01}}`: the key names the kind. Reading the value straight from the
    /// map keeps its place in a reader's errors (`steps[3].analysis.duration`).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let value = T::value(Self::index(&kind)?, MapValue(&mut map))?;
        no_more(&mut map, T::WHAT, &kind)?;
        Ok(value)
    }

    /// Serde's own form of an enum: a YAML tag (`!batched`), or a binary variant.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<T, A::Error> {
        let (kind, value) = data.variant::<String>()?;
        T::value(Self::index(&kind)?, VariantValue(value))
    }
}
