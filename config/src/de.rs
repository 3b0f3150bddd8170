//! A serde `Deserializer` over the located YAML tree. Typed component configs
//! derive `Deserialize` with `deny_unknown_fields`; any error they raise is
//! tagged with the file, line and key path of the node that caused it.
//! Unknown keys do not stop the walk: each is recorded and skipped, so one
//! run reports every unknown key of a component, not only the first.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;
use crate::yaml::{Loc, Node, NodeKind};

/// The serde error: a message and, once known, where it happened.
#[derive(Debug)]
pub struct DeError {
    message: String,
    place: Option<(Loc, String)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            place: None,
        }
    }
}

impl DeError {
    fn at(mut self, node: &Node, path: &str) -> Self {
        if self.place.is_none() {
            self.place = Some((node.loc.clone(), path.to_string()));
        }
        self
    }

    /// Turns this into a [`ConfigError`], falling back to `node`/`path`.
    pub fn into_config_error(self, node: &Node, path: &str) -> ConfigError {
        let (loc, key) = self
            .place
            .unwrap_or_else(|| (node.loc.clone(), path.to_string()));
        ConfigError {
            loc: Some(loc),
            key,
            message: self.message,
        }
    }
}

/// Deserializes `T` from `node`; `path` is the node's dotted key path.
/// Returns every unknown key found, plus the first other error if any.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, path: &str) -> Result<T, Vec<ConfigError>> {
    match from_node_partial(node, path) {
        (Some(value), errors) if errors.is_empty() => Ok(value),
        (_, errors) => Err(errors),
    }
}

/// Like [`from_node`], but also returns the value when the only problems
/// were unknown keys (which were skipped), so later checks can still run.
pub fn from_node_partial<T: de::DeserializeOwned>(
    node: &Node,
    path: &str,
) -> (Option<T>, Vec<ConfigError>) {
    let unknown = RefCell::new(Vec::new());
    let result = T::deserialize(NodeDe {
        node,
        path,
        unknown: &unknown,
    });
    let mut errors = unknown.into_inner();
    match result {
        Ok(value) => (Some(value), errors),
        Err(e) => {
            errors.push(e.into_config_error(node, path));
            (None, errors)
        }
    }
}

/// Keys the Collector removed that Tern still reads as deprecated aliases
/// (`(parent path, key)`): never suggested in a message.
const REMOVED_KEYS: &[(&str, &str)] = &[("service.telemetry.metrics", "address")];

/// The message for a key a struct at `path` does not have, listing the
/// ones it has (but not the ones the Collector removed).
pub fn unknown_key_message(path: &str, name: &str, fields: &[&str]) -> String {
    let expected: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !REMOVED_KEYS.contains(&(path, f)))
        .collect();
    if expected.is_empty() {
        format!("unknown field `{name}`, there are no fields")
    } else {
        let list: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "unknown field `{name}`, expected one of {}",
            list.join(", ")
        )
    }
}

/// Deserializer for one node.
#[derive(Clone, Copy)]
pub struct NodeDe<'a> {
    node: &'a Node,
    path: &'a str,
    /// Where unknown keys are recorded (shared by the whole walk).
    unknown: &'a RefCell<Vec<ConfigError>>,
}

impl<'a> NodeDe<'a> {
    fn scalar(&self) -> Result<&'a str, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { value, .. } => Ok(value),
            _ => Err(de::Error::custom(format!(
                "expected a scalar, found {}",
                self.node.shape()
            ))),
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let s = self.scalar()?;
        s.trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("expected {what}, found `{s}`")))
    }

    fn wrap<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.at(self.node, self.path))
    }

    /// A mapping; for a struct, `fields` are its keys and any other key is
    /// recorded as unknown and skipped.
    fn map<'de, V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries: &[(Node, Node)] = match &self.node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Null => &[],
            _ => {
                return self.wrap(Err(de::Error::custom(format!(
                    "expected a mapping, found {}",
                    self.node.shape()
                ))));
            }
        };
        let result = visitor.visit_map(MapDe {
            entries: entries.iter(),
            path: self.path,
            fields,
            value: None,
            value_path: String::new(),
            unknown: self.unknown,
        });
        self.wrap(result)
    }
}

/// A boolean as YAML 1.2 (and the Collector's YAML parser) writes it:
/// `true`, `True`, `TRUE` and the same for false; `yes`/`on` are strings.
fn yaml_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident : $ty:ty, $what:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let value: Result<$ty, DeError> = self.parse($what);
            let result = value.and_then(|v| visitor.$visit(v));
            self.wrap(result)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Scalar { value, plain } => {
                if *plain {
                    if let Some(b) = yaml_bool(value) {
                        visitor.visit_bool(b)
                    } else if let Ok(i) = value.parse::<i64>() {
                        visitor.visit_i64(i)
                    } else if let Ok(f) = value.parse::<f64>() {
                        visitor.visit_f64(f)
                    } else {
                        visitor.visit_str(value)
                    }
                } else {
                    visitor.visit_str(value)
                }
            }
            NodeKind::Seq(_) => return self.deserialize_seq(visitor),
            NodeKind::Map(_) => return self.deserialize_map(visitor),
        };
        self.wrap(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = self.scalar().and_then(|s| {
            yaml_bool(s.trim())
                .ok_or_else(|| de::Error::custom(format!("expected true or false, found `{s}`")))
        });
        self.wrap(value.and_then(|b| visitor.visit_bool(b)))
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8, "an integer";
        deserialize_i16 => visit_i16: i16, "an integer";
        deserialize_i32 => visit_i32: i32, "an integer";
        deserialize_i64 => visit_i64: i64, "an integer";
        deserialize_u8 => visit_u8: u8, "a non-negative integer";
        deserialize_u16 => visit_u16: u16, "a non-negative integer";
        deserialize_u32 => visit_u32: u32, "a non-negative integer";
        deserialize_u64 => visit_u64: u64, "a non-negative integer";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = self.scalar().and_then(|s| visitor.visit_str(s));
        self.wrap(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        self.wrap(result)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(de::Error::custom(format!(
                "expected nothing, found {}",
                self.node.shape()
            )))
        };
        self.wrap(result)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = visitor.visit_newtype_struct(self);
        self.wrap(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.node.list_items() {
            Some(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                path: self.path,
                index: 0,
                unknown: self.unknown,
            }),
            None => Err(de::Error::custom(format!(
                "expected a sequence, found {}",
                self.node.shape()
            ))),
        };
        self.wrap(result)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.map(Some(fields), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = self
            .scalar()
            .and_then(|s| visitor.visit_enum(s.into_deserializer()));
        self.wrap(result)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    path: &'a str,
    index: usize,
    unknown: &'a RefCell<Vec<ConfigError>>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some(node) => {
                let path = format!("{}[{}]", self.path, self.index);
                self.index += 1;
                seed.deserialize(NodeDe {
                    node,
                    path: &path,
                    unknown: self.unknown,
                })
                .map(Some)
                .map_err(|e| e.at(node, &path))
            }
        }
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    path: &'a str,
    /// The struct's keys; `None` for a free-form map.
    fields: Option<&'static [&'static str]>,
    value: Option<&'a Node>,
    value_path: String,
    unknown: &'a RefCell<Vec<ConfigError>>,
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            let name = key.as_str().unwrap_or("?");
            self.value_path = if self.path.is_empty() {
                name.to_string()
            } else {
                format!("{}.{}", self.path, name)
            };
            if let Some(fields) = self.fields
                && !fields.contains(&name)
            {
                self.unknown.borrow_mut().push(ConfigError {
                    loc: Some(key.loc.clone()),
                    key: self.value_path.clone(),
                    message: unknown_key_message(self.path, name, fields),
                });
                continue;
            }
            self.value = Some(value);
            return seed
                .deserialize(NodeDe {
                    node: key,
                    path: &self.value_path,
                    unknown: self.unknown,
                })
                .map(Some)
                .map_err(|e| e.at(key, &self.value_path));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without a key"))?;
        seed.deserialize(NodeDe {
            node,
            path: &self.value_path,
            unknown: self.unknown,
        })
        .map_err(|e| e.at(node, &self.value_path))
    }
}
