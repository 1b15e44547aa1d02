//! Reading the JSON objects control planes send (connection_info, encryption
//! metadata): JSON null counts as absent, a value of another type names its key.

use serde_json::{Map, Value};

use crate::types::json_type_name;

pub(crate) type Obj = Map<String, Value>;

/// A key's value, with JSON null treated as absent (Cinder sends `"qos_specs": null`
/// and sometimes null auth fields).
pub(crate) fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

/// A key whose value has the wrong JSON type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrongType {
    pub key: &'static str,
    pub expected: &'static str,
    pub found: &'static str,
}

/// A string value; absent or null is `None`.
pub(crate) fn get_str<'a>(o: &'a Obj, key: &'static str) -> Result<Option<&'a str>, WrongType> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(WrongType {
            key,
            expected: "a string",
            found: json_type_name(v),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_is_absent_and_types_are_named() {
        let v = json!({"a": "x", "n": null, "i": 3});
        let o = v.as_object().unwrap();
        assert_eq!(get_str(o, "a"), Ok(Some("x")));
        assert_eq!(get_str(o, "n"), Ok(None));
        assert_eq!(get_str(o, "missing"), Ok(None));
        assert_eq!(
            get_str(o, "i"),
            Err(WrongType {
                key: "i",
                expected: "a string",
                found: "number"
            })
        );
    }
}
