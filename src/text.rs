//! Words for people: counts with their nouns.

/// "1 page", "2 pages".
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
