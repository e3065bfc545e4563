//! The caller's deadline, as carried by the `grpc-timeout` header, so a service that calls
//! another one can pass the remaining time on (tonic's `Endpoint::timeout` does not tell the
//! server; `Request::set_timeout` does).

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The timeout the caller set, if any: `grpc-timeout` is an integer of at most 8 digits and a
/// unit, `H`ours, `M`inutes, `S`econds, `m`illiseconds, `u`(micro) or `n`anoseconds.
pub fn incoming_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A request for a downstream call carrying `message` and the caller's remaining deadline.
pub fn forward<T>(metadata: &MetadataMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(timeout) = incoming_timeout(metadata) {
        request.set_timeout(timeout);
    }
    // Keep the caller's own metadata (e.g. trace context, auth) except what gRPC reserves.
    for entry in metadata.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry
            && !key.as_str().starts_with("grpc-")
            && !matches!(key.as_str(), "te" | "content-type" | "user-agent")
        {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
    }
    // With tracing on, the downstream call is a child of this service's span.
    crate::telemetry::inject(request.metadata_mut());
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(raw: &'static str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", raw.parse().unwrap());
        m
    }

    #[test]
    fn parses_every_unit() {
        for (raw, want) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("999u", Duration::from_micros(999)),
            ("10n", Duration::from_nanos(10)),
        ] {
            assert_eq!(incoming_timeout(&with_timeout(raw)), Some(want), "{raw}");
        }
        for bad in ["", "S", "5x", "123456789S", "-1S"] {
            let mut m = MetadataMap::new();
            if !bad.is_empty() {
                m.insert("grpc-timeout", bad.parse().unwrap());
            }
            assert_eq!(incoming_timeout(&m), None, "{bad:?}");
        }
    }

    #[test]
    fn forwarding_keeps_the_deadline_and_custom_metadata() {
        let mut incoming = with_timeout("1500m");
        incoming.insert("traceparent", "00-abc-def-01".parse().unwrap());
        let request = forward(&incoming, ());
        assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "1500000u");
        assert_eq!(
            request.metadata().get("traceparent").unwrap(),
            "00-abc-def-01"
        );
    }
}
