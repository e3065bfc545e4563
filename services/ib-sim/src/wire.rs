//! TWS API framing: the `API\0` greeting, length-prefixed frames, message ids.
//!
//! After the 4-byte `API\0` greeting every frame is `[u32 BE length][body]`. The client's
//! version range and the server's handshake reply are plain text frames; every later frame
//! body starts with a 4-byte big-endian message id, and ids above [`PROTOBUF_OFFSET`] carry a
//! protobuf payload of message type `id - 200` (the only encoding `ibapi` 5.x speaks).

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Protobuf message ids are the classic ids plus this offset, in both directions.
pub const PROTOBUF_OFFSET: u32 = 200;

/// Largest frame accepted (the limit `ibapi` enforces too).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Message ids the client sends.
pub mod incoming {
    pub const REQ_CONTRACT_DATA: u32 = 9;
    pub const REQ_HISTORICAL_DATA: u32 = 20;
    pub const CANCEL_HISTORICAL_DATA: u32 = 25;
    pub const START_API: u32 = 71;
    pub const REQ_HEAD_TIMESTAMP: u32 = 87;
    pub const CANCEL_HEAD_TIMESTAMP: u32 = 90;
    pub const CANCEL_CONTRACT_DATA: u32 = 106;
}

/// Message ids the server sends.
pub mod outgoing {
    pub const ERROR: u32 = 4;
    pub const NEXT_VALID_ID: u32 = 9;
    pub const CONTRACT_DATA: u32 = 10;
    pub const MANAGED_ACCOUNTS: u32 = 15;
    pub const HISTORICAL_DATA: u32 = 17;
    pub const CONTRACT_DATA_END: u32 = 52;
    pub const HEAD_TIMESTAMP: u32 = 88;
    pub const HISTORICAL_DATA_END: u32 = 108;
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge(usize),
    #[error("bad handshake: {0}")]
    Handshake(String),
    #[error("frame of {0} bytes is too short for a message id")]
    NoMessageId(usize),
}

/// One decoded frame after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The classic message id (protobuf offset removed).
    pub id: u32,
    /// Whether the payload is protobuf (id was above 200) or NUL-separated text.
    pub protobuf: bool,
    pub payload: Vec<u8>,
}

/// Reads one length-prefixed frame; `Ok(None)` on a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Reads the client greeting: `API\0` then a text frame `v<min>..<max>` (or `v<n>`).
/// Returns the client's (min, max) version.
pub async fn read_greeting<R: AsyncRead + Unpin>(r: &mut R) -> Result<(i32, i32), WireError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).await?;
    if &magic != b"API\0" {
        return Err(WireError::Handshake(format!(
            "expected API\\0, got {magic:?}"
        )));
    }
    let body = read_frame(r)
        .await?
        .ok_or_else(|| WireError::Handshake("closed before the version range".into()))?;
    parse_version_range(&String::from_utf8_lossy(&body))
        .ok_or_else(|| WireError::Handshake("unreadable version range".into()))
}

fn parse_version_range(text: &str) -> Option<(i32, i32)> {
    let text = text.trim_end_matches('\0').trim();
    let range = text.strip_prefix('v')?;
    // Clients may append connect options after a space ("v100..226 +PACEAPI").
    let range = range.split_whitespace().next()?;
    match range.split_once("..") {
        Some((min, max)) => Some((min.parse().ok()?, max.parse().ok()?)),
        None => {
            let v = range.parse().ok()?;
            Some((v, v))
        }
    }
}

/// Splits a frame body into message id and payload.
pub fn decode_frame(body: Vec<u8>) -> Result<Frame, WireError> {
    if body.len() < 4 {
        return Err(WireError::NoMessageId(body.len()));
    }
    let raw = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let payload = body[4..].to_vec();
    Ok(if raw > PROTOBUF_OFFSET {
        Frame {
            id: raw - PROTOBUF_OFFSET,
            protobuf: true,
            payload,
        }
    } else {
        Frame {
            id: raw,
            protobuf: false,
            payload,
        }
    })
}

/// The server's handshake reply: a text frame without message id,
/// `"<version>\0<yyyymmdd hh:mm:ss TZ>\0"`.
pub fn handshake_reply(server_version: i32, time: &str) -> Vec<u8> {
    let text = format!("{server_version}\0{time}\0");
    with_length(text.as_bytes())
}

/// A protobuf message framed with id `id + 200`.
pub fn proto_frame(id: u32, message: &impl Message) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + message.encoded_len());
    body.extend_from_slice(&(id + PROTOBUF_OFFSET).to_be_bytes());
    message.encode(&mut body).unwrap_or_default();
    with_length(&body)
}

fn with_length(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_version_ranges_clients_send() {
        assert_eq!(parse_version_range("v213..226"), Some((213, 226)));
        assert_eq!(parse_version_range("v100..226 +PACEAPI"), Some((100, 226)));
        assert_eq!(parse_version_range("v176"), Some((176, 176)));
        assert_eq!(parse_version_range("213..226"), None);
    }

    #[tokio::test]
    async fn reads_the_greeting_and_frames() {
        let mut bytes = b"API\0".to_vec();
        bytes.extend(with_length(b"v213..226"));
        bytes.extend(with_length(&[0, 0, 1, 15, 8, 7]));
        let mut r = bytes.as_slice();
        assert_eq!(read_greeting(&mut r).await.unwrap(), (213, 226));
        let frame = decode_frame(read_frame(&mut r).await.unwrap().unwrap()).unwrap();
        assert_eq!((frame.id, frame.protobuf), (71, true));
        assert_eq!(frame.payload, vec![8, 7]);
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[test]
    fn handshake_reply_has_no_message_id() {
        let frame = handshake_reply(213, "20260102 09:30:00 UTC");
        assert_eq!(&frame[4..], b"213\x0020260102 09:30:00 UTC\0");
        assert_eq!(
            u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]),
            26
        );
    }
}
