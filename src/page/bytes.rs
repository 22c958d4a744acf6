//! The page scanner's byte work: skipping the plain text of strings many
//! bytes at a time, and copying a record without its layout whitespace.

/// The index of the first `"`, `\` or control byte at or after `i`, or
/// a position shortly before it: past the plain text that makes up most of
/// a page, sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)] // SSE2 intrinsics: see the SAFETY note
pub(super) fn skip_plain(b: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
    // always available; every load is unaligned and reads b[i..i + 16],
    // which the loop condition keeps in bounds.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control_max = _mm_set1_epi8(0x1f);
        while i + 16 <= b.len() {
            let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
            // min(v, 0x1f) == v exactly when v <= 0x1f, comparing unsigned.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, control_max), v);
            let special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                control,
            );
            let mask = _mm_movemask_epi8(special);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    i
}

/// Elsewhere, eight bytes at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn skip_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        if special_byte(u64::from_le_bytes(chunk.try_into().unwrap_or_default())) {
            break;
        }
        i += 8;
    }
    i
}

/// Whether any byte of `word` is `"`, `\` or a control byte (below 0x20).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(super) fn special_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let below_0x20 = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_0x20 || has_zero(word ^ (ONES * b'"' as u64)) || has_zero(word ^ (ONES * b'\\' as u64))
}

/// Appends `json` (already known to be valid JSON) to `out` without the
/// whitespace between tokens, so a pretty-printed record still fits on one
/// line. Strings are copied untouched: valid JSON has no raw newline in them.
pub fn minify_into(out: &mut Vec<u8>, json: &[u8]) {
    let mut rest = json;
    loop {
        // Outside strings: copy up to the next quote or whitespace byte.
        let stop = rest
            .iter()
            .position(|&b| matches!(b, b'"' | b' ' | b'\n' | b'\r' | b'\t'));
        let Some(i) = stop else {
            out.extend_from_slice(rest);
            return;
        };
        if rest[i] != b'"' {
            out.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            continue;
        }
        // Inside a string: copy through the closing quote, minding escapes.
        let mut j = i + 1;
        while j < rest.len() {
            match rest[j] {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        let end = (j + 1).min(rest.len());
        out.extend_from_slice(&rest[..end]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::tests::Rng;

    #[test]
    fn special_bytes_are_found_in_every_lane() {
        for lane in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut bytes = *b"abcdefgh";
                bytes[lane] = special;
                assert!(
                    special_byte(u64::from_le_bytes(bytes)),
                    "{special:#x} in lane {lane}"
                );
            }
        }
        for plain in [
            *b"abcdefgh",
            *b"  \x7f~!#[]",
            [0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0xf0, 0x9f, 0x9a],
        ] {
            assert!(!special_byte(u64::from_le_bytes(plain)), "{plain:?}");
        }
    }

    #[test]
    fn skip_plain_stops_at_the_first_special_byte() {
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(10) {
                    0 => b'"',
                    1 => b'\\',
                    2 => rng.below(0x20) as u8,
                    3 => 0x80 + rng.below(0x80) as u8,
                    _ => 0x20 + rng.below(0x60) as u8,
                })
                .collect();
            let start = rng.below(len + 1);
            let first = (start..len)
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0x00..=0x1f))
                .unwrap_or(len);
            let got = skip_plain(&bytes, start);
            // Never past the first special byte; short of it only as each
            // version's contract allows (the caller goes on byte by byte).
            let short_allowed = if cfg!(target_arch = "x86_64") {
                // SSE2: exact, but where less than a 16-byte chunk is left.
                got + 16 > len
            } else {
                // Portable: at the start of the 8-byte word that holds it,
                // or where less than a word is left.
                first.saturating_sub(got) < 8
            };
            assert!(
                start <= got && got <= first && (got == first || short_allowed),
                "{bytes:?} from {start}: {got}, first special at {first}"
            );
        }
    }
}
