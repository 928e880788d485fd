//! Human-written durations (`500ms`, `10s`, `15m`, `24h`, `7d`) and sizes (`512B`, `64KB`,
//! `5MB`, `1GB`) as they appear in `palisade.toml`, parsed once into typed values.
//!
//! Sizes use powers of 1024, as operators expect of upload limits ("5MB" is 5 × 1024 × 1024).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written like `10s`, `15m`, `24h`, `7d` or `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// A byte count written like `5MB`, `64KB`, `1GB` or `512B` (a bare integer means bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a duration or size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (number, unit) = split_number(text.trim());
        let expected = || {
            UnitError(format!(
                "invalid duration {text:?}: expected a whole number followed by ms, s, m, h or d \
                 (for example \"10s\" or \"7d\")"
            ))
        };
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(expected()),
        };
        let millis = whole_number(number)
            .ok_or_else(expected)?
            .and_then(|n| n.checked_mul(millis_per_unit))
            .ok_or_else(|| out_of_range("duration", text))?;
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (number, unit) = split_number(text.trim());
        let expected = || {
            UnitError(format!(
                "invalid size {text:?}: expected a whole number followed by B, KB, MB or GB \
                 (also K, M, G, KiB, MiB, GiB, in any case; for example \"5MB\")"
            ))
        };
        let factor: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" | "K" | "KIB" => 1 << 10,
            "MB" | "M" | "MIB" => 1 << 20,
            "GB" | "G" | "GIB" => 1 << 30,
            _ => return Err(expected()),
        };
        whole_number(number)
            .ok_or_else(expected)?
            .and_then(|n| n.checked_mul(factor))
            .map(Self)
            .ok_or_else(|| out_of_range("size", text))
    }
}

/// `split_number`'s digits as a number: `None` when there are none, `Some(None)` when they
/// are too many for a `u64`.
fn whole_number(digits: &str) -> Option<Option<u64>> {
    (!digits.is_empty()).then(|| digits.parse().ok())
}

fn out_of_range(what: &str, text: &str) -> UnitError {
    UnitError(format!(
        "{what} {text:?} is out of range: too large to count (in milliseconds for a duration, \
         bytes for a size)"
    ))
}

/// Splits `"10s"` into `("10", "s")`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    (number, unit.trim())
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, name) in units {
            if ms >= size && ms % size == 0 {
                return write!(f, "{}{name}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(1u64 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")];
        for (size, name) in units {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(n) => Ok(Self(n)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_every_unit() {
        let read = |t: &str| t.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(read("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(read("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(read("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(read("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(read("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn durations_without_a_known_unit_are_refused_with_an_example() {
        for bad in [
            "10",
            "ten s",
            "10 fortnights",
            "",
            "-5s",
            "99999999999999999999x",
        ] {
            let err = bad.parse::<HumanDuration>().expect_err(bad);
            assert!(err.to_string().contains("for example"), "{err}");
        }
    }

    /// A number too large reads as out of range, not as a malformed duration or size.
    #[test]
    fn numbers_too_large_are_out_of_range() {
        for bad in [
            "18446744073709551615s",
            "99999999999999999999d",
            "213503982335d",
        ] {
            let err = bad.parse::<HumanDuration>().expect_err(bad).to_string();
            assert!(
                err.contains("out of range") && err.contains(bad) && !err.contains("for example"),
                "{err}"
            );
        }
        assert_eq!(
            "18446744073709551615ms".parse::<HumanDuration>(),
            Ok(HumanDuration(Duration::from_millis(u64::MAX)))
        );
        for bad in ["18446744073709551616", "17179869184GB"] {
            let err = bad.parse::<ByteSize>().expect_err(bad).to_string();
            assert!(err.contains("out of range"), "{err}");
        }
        assert_eq!("16777215GB".parse(), Ok(ByteSize(16_777_215 << 30)));
    }

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!("5MB".parse(), Ok(ByteSize(5 * 1024 * 1024)));
        assert_eq!("64KB".parse(), Ok(ByteSize(65_536)));
        assert_eq!("1GB".parse(), Ok(ByteSize(1 << 30)));
        assert_eq!("512".parse(), Ok(ByteSize(512)));
        assert!("5 parsecs".parse::<ByteSize>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "10s", "15m", "36h", "7d"] {
            assert_eq!(
                text.parse::<HumanDuration>().map(|d| d.to_string()),
                Ok(text.into())
            );
        }
        for text in ["5MB", "64KB", "1GB", "100B"] {
            assert_eq!(
                text.parse::<ByteSize>().map(|d| d.to_string()),
                Ok(text.into())
            );
        }
    }
}
