//! The functions of the language: their signatures (checked at compile time) and what they
//! compute. Each follows Cloudflare's meaning; where Cloudflare leaves a choice open, the
//! choice is documented in `docs/rules.md`.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::bytes::Regex;

use crate::eval::{Context, Node, Val};
use crate::types::Value;

/// Every function name, for "unknown function" messages.
pub(crate) const NAMES: &[&str] = &[
    "any",
    "all",
    "concat",
    "cidr",
    "ends_with",
    "len",
    "lower",
    "regex_replace",
    "remove_bytes",
    "starts_with",
    "to_string",
    "upper",
    "url_decode",
];

/// A function with its compile-time constant arguments already prepared.
#[derive(Debug)]
pub(crate) enum Func {
    Lower,
    Upper,
    Len,
    StartsWith,
    EndsWith,
    UrlDecode { recursive: bool, unicode: bool },
    Concat,
    ToString,
    RemoveBytes,
    Cidr { v4: u8, v6: u8 },
    RegexReplace { regex: Regex, replacement: Vec<u8> },
}

/// Most rounds of `url_decode(x, "r")`: enough for any real multi-encoding, and bounded.
const MAX_DECODE_ROUNDS: usize = 8;

impl Func {
    /// Runs the function. When the first argument is a `[*]` list, maps over it.
    pub fn call<'a>(&'a self, args: &'a [Node], each: bool, cx: &'a Context<'_>) -> Val<'a> {
        if matches!(self, Func::Concat) {
            return concat(args.iter().map(|a| a.eval(cx)).collect());
        }
        let Some(first) = args.first().map(|a| a.eval(cx)) else {
            return Val::Missing;
        };
        // Apart from concat, functions take at most two evaluated arguments; the others
        // (bits, patterns, options) are literals compiled into the function.
        let second = args.get(1).map(|a| a.eval(cx));
        match first {
            Val::List(items) if each => Val::List(
                items
                    .into_iter()
                    .map(|item| self.apply(item, second.as_ref()))
                    .collect(),
            ),
            first => self.apply(first, second.as_ref()),
        }
    }

    pub fn apply<'a>(&'a self, first: Val<'a>, second: Option<&Val<'_>>) -> Val<'a> {
        if matches!(first, Val::Missing) || matches!(second, Some(Val::Missing)) {
            return Val::Missing;
        }
        let second = || match second {
            Some(Val::Bytes(b)) => b.as_ref(),
            _ => &[],
        };
        match (self, first) {
            (Func::Lower, Val::Bytes(b)) => Val::Bytes(Cow::Owned(b.to_ascii_lowercase())),
            (Func::Upper, Val::Bytes(b)) => Val::Bytes(Cow::Owned(b.to_ascii_uppercase())),
            (Func::Len, v) => Val::Int(length(v)),
            (Func::StartsWith, Val::Bytes(b)) => Val::Bool(b.starts_with(second())),
            (Func::EndsWith, Val::Bytes(b)) => Val::Bool(b.ends_with(second())),
            (Func::UrlDecode { recursive, unicode }, Val::Bytes(b)) => {
                Val::Bytes(Cow::Owned(url_decode_rounds(&b, *recursive, *unicode)))
            }
            (Func::ToString, v) => Val::Bytes(Cow::Owned(to_string(v))),
            (Func::RemoveBytes, Val::Bytes(b)) => {
                let drop = second();
                Val::Bytes(Cow::Owned(
                    b.iter().copied().filter(|c| !drop.contains(c)).collect(),
                ))
            }
            (Func::Cidr { v4, v6 }, Val::Ip(ip)) => Val::Ip(network(ip, *v4, *v6)),
            (Func::RegexReplace { regex, replacement }, Val::Bytes(b)) => {
                let replaced = regex.replacen(&b, 1, replacement.as_slice()).into_owned();
                Val::Bytes(Cow::Owned(replaced))
            }
            _ => Val::Missing,
        }
    }
}

fn length(v: Val<'_>) -> i64 {
    let n = match v {
        Val::Bytes(b) => b.len(),
        Val::Ref(Value::Array(items)) => items.len(),
        Val::Ref(Value::Map(items)) => items.len(),
        Val::List(items) => items.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Strings join into one string; arrays join into one array.
fn concat(vals: Vec<Val<'_>>) -> Val<'_> {
    if vals.iter().any(|v| matches!(v, Val::Missing)) {
        return Val::Missing;
    }
    if vals.iter().all(|v| matches!(v, Val::Bytes(_))) {
        let mut out = Vec::new();
        for v in &vals {
            if let Val::Bytes(b) = v {
                out.extend_from_slice(b);
            }
        }
        return Val::Bytes(Cow::Owned(out));
    }
    Val::List(vals.into_iter().flat_map(Val::elements).collect())
}

fn to_string(v: Val<'_>) -> Vec<u8> {
    match v {
        Val::Bool(b) => b.to_string().into_bytes(),
        Val::Int(n) => n.to_string().into_bytes(),
        Val::Ip(ip) => ip.to_string().into_bytes(),
        Val::Bytes(b) => b.into_owned(),
        _ => Vec::new(),
    }
}

/// The network address of `ip` with a /v4 or /v6 mask.
pub(crate) fn network(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    let bits = if ip.is_ipv4() { v4 } else { v6 };
    IpNet::new(ip, bits).map_or(ip, |net| net.network())
}

fn url_decode_rounds(input: &[u8], recursive: bool, unicode: bool) -> Vec<u8> {
    let mut current = url_decode(input, unicode);
    if !recursive {
        return current;
    }
    for _ in 1..MAX_DECODE_ROUNDS {
        let next = url_decode(&current, unicode);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Decodes `%XX` and `+`; with `unicode`, also `%uXXXX` (as UTF-8). Malformed escapes stay.
pub(crate) fn url_decode(input: &[u8], unicode: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if unicode && matches!(input.get(i + 1), Some(b'u' | b'U')) => {
                let code = input.get(i + 2..i + 6).and_then(hex_value);
                match code.and_then(char::from_u32) {
                    Some(c) => {
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'%' => match input.get(i + 1..i + 3).and_then(hex_value) {
                Some(byte) => {
                    out.push(u8::try_from(byte).unwrap_or(b'%'));
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    out
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decode_handles_plus_percent_and_malformed_escapes() {
        assert_eq!(url_decode(b"a+b%20c%2", false), b"a b c%2");
        assert_eq!(url_decode(b"%zz%41", false), b"%zzA");
        assert_eq!(url_decode(b"%u0041%u00e9", true), "Aé".as_bytes());
        assert_eq!(url_decode(b"%u0041", false), b"%u0041");
    }

    #[test]
    fn recursive_decoding_stops_when_nothing_changes() {
        assert_eq!(url_decode_rounds(b"%252527", true, false), b"'");
        assert_eq!(url_decode_rounds(b"%252527", false, false), b"%2527");
    }

    #[test]
    fn network_masks_by_family() {
        let v4: IpAddr = "192.0.2.77".parse().expect("ip");
        assert_eq!(
            network(v4, 24, 64),
            "192.0.2.0".parse::<IpAddr>().expect("ip")
        );
        let v6: IpAddr = "2001:db8::1:2".parse().expect("ip");
        assert_eq!(
            network(v6, 24, 32),
            "2001:db8::".parse::<IpAddr>().expect("ip")
        );
    }
}
