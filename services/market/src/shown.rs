//! How untrusted input (a symbol, a name, an id from a request) appears in a message: quoted,
//! cut to 64 characters, with its full size after, so a huge value never floods a reply or a
//! log line.

/// Shows at most 64 characters of untrusted input in a message, with the full size after.
pub fn shown(raw: &str) -> String {
    const LIMIT: usize = 64;
    if raw.len() <= LIMIT {
        return format!("{raw:?}");
    }
    let mut end = LIMIT;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &raw[..end], raw.len())
}
