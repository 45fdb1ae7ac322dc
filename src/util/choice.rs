//! Closed choices (engine, precision, aggregation, ...) with one spelling each: the library's
//! `FromStr` and `Display`, the command line's value parser and the Python binding's keyword
//! values all read the same table ([`Choice`]), declared once per type with the crate's
//! `choice!` macro.

use crate::error::{Error, Param, Result};

/// A type with a closed set of named values.
pub trait Choice: Copy + Eq + Sized + 'static {
    /// What a value is called in messages (`precision`, `VGG configuration`).
    const NOUN: &'static str;
    /// The parameter whose value it is (named in parse errors).
    const PARAM: Param;
    /// Every value, in the order help lists them.
    fn all() -> &'static [Self];
    /// The value's name: its one spelling in output.
    fn name(self) -> &'static str;
    /// Other spellings accepted on input.
    fn aliases(self) -> &'static [&'static str];
    /// One line saying what the value means.
    fn help(self) -> &'static str;
}

/// `a, b or c`.
pub fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The message for a value that names no choice: `unknown precision `f64` (expected f32 or
/// bf16)`.
pub fn unknown<T: Choice>(s: &str) -> String {
    let names: Vec<&str> = T::all().iter().map(|v| v.name()).collect();
    format!("unknown {} `{s}` (expected {})", T::NOUN, or_list(&names))
}

/// Parses a choice by name or alias, ignoring ASCII case; otherwise an [`Error::Param`] about
/// [`Choice::PARAM`] listing the names.
pub fn parse<T: Choice>(s: &str) -> Result<T> {
    T::all()
        .iter()
        .copied()
        .find(|v| {
            v.name().eq_ignore_ascii_case(s)
                || v.aliases().iter().any(|a| a.eq_ignore_ascii_case(s))
        })
        .ok_or_else(|| Error::param(T::PARAM, unknown::<T>(s)))
}

/// Implements [`Choice`], `FromStr` and `Display` for an enum from a table of its values:
/// `choice!(Type, "noun", Param::X, [Type::A => "a" | "alias": "help", ...]);`
macro_rules! choice {
    ($ty:ty, $noun:literal, $param:expr, [
        $($var:path => $name:literal $(| $alias:literal)* : $help:literal),+ $(,)?
    ]) => {
        impl $crate::util::choice::Choice for $ty {
            const NOUN: &'static str = $noun;
            const PARAM: $crate::error::Param = $param;
            fn all() -> &'static [Self] {
                &[$($var),+]
            }
            fn name(self) -> &'static str {
                match self {
                    $($var => $name),+
                }
            }
            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $($var => &[$($alias),*]),+
                }
            }
            fn help(self) -> &'static str {
                match self {
                    $($var => $help),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                $crate::util::choice::parse(s)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::util::choice::Choice::name(*self))
            }
        }
    };
}

pub(crate) use choice;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Precision;

    #[test]
    fn names_aliases_and_errors() {
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
        assert_eq!(parse::<Precision>("BF16").unwrap(), Precision::Bf16);
        let e = parse::<Precision>("f64").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid precision: unknown precision `f64` (expected f32, bf16 or int8)"
        );
        assert!(matches!(
            e,
            Error::Param {
                param: Param::Precision,
                ..
            }
        ));
    }
}
