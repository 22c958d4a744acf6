//! Text that goes into a request URL.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What `encode` escapes: everything but ASCII letters, digits, `-` and
/// `_`, so that no value can add a path step (`/`, `..`), a query or an
/// authority to a URL.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Percent-encodes a query value or a path segment (`ESCAPED`).
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_but_letters_digits_dash_and_underscore_stays() {
        assert_eq!(
            encode("2024-01-02T03:04:05+00:00"),
            "2024-01-02T03%3A04%3A05%2B00%3A00"
        );
        assert_eq!(encode("../x@y"), "%2E%2E%2Fx%40y");
        assert_eq!(encode("c_é 1"), "c_%C3%A9%201");
    }
}
