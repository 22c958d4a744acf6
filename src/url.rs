//! Text that goes into a request URL.

/// Percent-encodes a query value or a path segment: everything but ASCII
/// letters, digits, `-` and `_`, so that no value can add a path step
/// (`/`, `..`), a query or an authority to a URL.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    }
}
