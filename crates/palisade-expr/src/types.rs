//! Types of the language and the owned values fields hold.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The type of a field, function result or literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// A 64-bit signed integer.
    Int,
    /// A string of bytes (Cloudflare's `String` and `Bytes`).
    Bytes,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An ordered list of values of one type.
    Array(Box<Type>),
    /// Byte-string keys to values of one type.
    Map(Box<Type>),
}

impl Type {
    /// `Array<String>`, the type of `http.request.headers.names` and friends.
    pub fn strings() -> Type {
        Type::Array(Box::new(Type::Bytes))
    }

    /// `Map<Array<String>>`, the type of `http.request.headers` and friends.
    pub fn string_map() -> Type {
        Type::Map(Box::new(Type::strings()))
    }

    /// The element type of an array or the value type of a map.
    pub fn element(&self) -> Option<&Type> {
        match self {
            Type::Array(t) | Type::Map(t) => Some(t),
            _ => None,
        }
    }

    /// The type with an article, for messages: "a string", "an array of strings".
    pub fn described(&self) -> String {
        match self {
            Type::Int | Type::Ip | Type::Array(_) => format!("an {self}"),
            _ => format!("a {self}"),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("boolean"),
            Type::Int => f.write_str("integer"),
            Type::Bytes => f.write_str("string"),
            Type::Ip => f.write_str("IP address"),
            Type::Array(t) => write!(f, "array of {}", plural(t)),
            Type::Map(t) => write!(f, "map of {}", plural(t)),
        }
    }
}

fn plural(t: &Type) -> String {
    match t {
        Type::Array(_) | Type::Map(_) => {
            let inner = t.to_string();
            inner
                .replacen("array", "arrays", 1)
                .replacen("map", "maps", 1)
        }
        Type::Ip => "IP addresses".to_owned(),
        other => format!("{other}s"),
    }
}

/// The value of a field for one request, owned and computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Bytes (usually UTF-8 text, never required to be).
    Bytes(Vec<u8>),
    /// An address.
    Ip(IpAddr),
    /// An array.
    Array(Vec<Value>),
    /// A map; keys are compared byte for byte.
    Map(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// Whether this value has type `ty` (deeply for arrays and maps).
    pub fn has_type(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Bool(_), Type::Bool)
            | (Value::Int(_), Type::Int)
            | (Value::Bytes(_), Type::Bytes)
            | (Value::Ip(_), Type::Ip) => true,
            (Value::Array(items), Type::Array(t)) => items.iter().all(|v| v.has_type(t)),
            (Value::Map(items), Type::Map(t)) => items.values().all(|v| v.has_type(t)),
            _ => false,
        }
    }

    /// The empty value of a type: false, 0, "", ::, [] or {}.
    pub fn empty(ty: &Type) -> Value {
        match ty {
            Type::Bool => Value::Bool(false),
            Type::Int => Value::Int(0),
            Type::Bytes => Value::Bytes(Vec::new()),
            Type::Ip => Value::Ip(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
            Type::Array(_) => Value::Array(Vec::new()),
            Type::Map(_) => Value::Map(BTreeMap::new()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Bytes(s.into_bytes())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<IpAddr> for Value {
    fn from(ip: IpAddr) -> Value {
        Value::Ip(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_naturally_in_messages() {
        assert_eq!(Type::Bytes.described(), "a string");
        assert_eq!(Type::Ip.described(), "an IP address");
        assert_eq!(Type::string_map().described(), "a map of arrays of strings");
    }
}
