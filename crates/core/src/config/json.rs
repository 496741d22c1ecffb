//! JSON text → `serde_json::Value`, noting keys written twice in one object.
//!
//! serde_json keeps the last of two equal keys without a word. PowerShell's `ConvertFrom-Json`
//! (how AKS Edge Essentials reads its file) refuses keys that differ only in case, and an exact
//! repeat has no single meaning, so both are collected here with their JSON path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::reader::join;

/// A key written a second time in the same object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Duplicate {
    /// Path of the second occurrence, spelled as written.
    pub path: String,
    /// The first spelling of the key.
    pub first: String,
    /// Same spelling (`true`) or the same key in another case (`false`).
    pub exact: bool,
}

pub(super) fn parse(text: &str) -> Result<(Value, Vec<Duplicate>), serde_json::Error> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed {
        path: &At::Root,
        dups: &dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, dups.into_inner()))
}

/// Where a value sits, as a chain up to the root: written out only for a duplicate (a file
/// of a 255-machine cluster has thousands of values, and a path string for each was most of
/// the cost of reading it).
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn render(&self) -> String {
        match self {
            At::Root => String::new(),
            At::Key(parent, key) => join(&parent.render(), key),
            At::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

/// Past this many keys an object's keys are looked up by hash; below, a scan is cheaper than
/// the lower-cased copies a hash lookup needs.
const SCAN_KEYS: usize = 16;

struct Seed<'a> {
    path: &'a At<'a>,
    dups: &'a RefCell<Vec<Duplicate>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = At::Index(self.path, items.len());
            let Some(item) = seq.next_element_seed(Seed {
                path: &at,
                dups: self.dups,
            })?
            else {
                break;
            };
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // Lower-cased key → its first spelling, once the object is large: one lookup per key,
        // however large the object.
        let mut seen: HashMap<String, String> = HashMap::new();
        while let Some(key) = access.next_key::<String>()? {
            let at = At::Key(self.path, &key);
            let value = access.next_value_seed(Seed {
                path: &at,
                dups: self.dups,
            })?;
            let first = if map.len() < SCAN_KEYS {
                map.keys().find(|k| k.eq_ignore_ascii_case(&key)).cloned()
            } else {
                if seen.is_empty() {
                    for k in map.keys() {
                        seen.insert(k.to_ascii_lowercase(), k.clone());
                    }
                }
                seen.get(&key.to_ascii_lowercase()).cloned()
            };
            if let Some(first) = first {
                let exact = first == key;
                self.dups.borrow_mut().push(Duplicate {
                    path: at.render(),
                    first,
                    exact,
                });
                // The first occurrence stays: PowerShell would not have read the file at all.
                continue;
            }
            if !seen.is_empty() {
                seen.insert(key.to_ascii_lowercase(), key.clone());
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_with_their_path() {
        let (v, d) = parse(r#"{"A": {"b": 1, "B": 2, "b": 3}, "L": [{"x": 1, "x": 2}]}"#).unwrap();
        assert_eq!(v["A"]["b"], 1);
        assert_eq!(
            d,
            vec![
                Duplicate {
                    path: "A.B".into(),
                    first: "b".into(),
                    exact: false
                },
                Duplicate {
                    path: "A.b".into(),
                    first: "b".into(),
                    exact: true
                },
                Duplicate {
                    path: "L[0].x".into(),
                    first: "x".into(),
                    exact: true
                },
            ]
        );
    }

    #[test]
    fn a_huge_object_is_read_in_linear_time() {
        let keys: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"K7\": 0}}", keys.join(","));
        let started = std::time::Instant::now();
        let (v, d) = parse(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 200_000);
        assert_eq!(d.len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_crash() {
        let text = "[".repeat(100_000);
        assert!(parse(&text).is_err());
    }
}
