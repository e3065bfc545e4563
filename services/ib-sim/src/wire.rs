//! TWS API framing: the `API\0` greeting, length-prefixed frames, message ids, versions.
//!
//! After the 4-byte `API\0` greeting every frame is `[u32 BE length][body]`. The client's
//! version range and the server's handshake reply are plain text frames. How a later frame
//! body starts depends on the server version the two sides agreed on:
//! - below [`versions::BINARY_IDS`] (the classic protocol): the message id is the first
//!   NUL-terminated text field, and every field after it is NUL-terminated text;
//! - from [`versions::BINARY_IDS`] on: a 4-byte big-endian id; ids above [`PROTOBUF_OFFSET`]
//!   carry a protobuf payload of message type `id - 200`, the others NUL-terminated text fields.
//!
//! Which message types travel as protobuf from which version is in [`crate::codec`].

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Protobuf message ids are the classic ids plus this offset, in both directions.
pub const PROTOBUF_OFFSET: u32 = 200;

/// Largest frame accepted (the limit `ibapi` enforces too).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Message ids the client sends.
pub mod incoming {
    pub const REQ_OPEN_ORDERS: u32 = 5;
    pub const REQ_ACCOUNT_DATA: u32 = 6;
    pub const REQ_EXECUTIONS: u32 = 7;
    pub const REQ_IDS: u32 = 8;
    pub const REQ_CONTRACT_DATA: u32 = 9;
    pub const REQ_ALL_OPEN_ORDERS: u32 = 16;
    pub const REQ_MANAGED_ACCOUNTS: u32 = 17;
    pub const REQ_HISTORICAL_DATA: u32 = 20;
    pub const CANCEL_HISTORICAL_DATA: u32 = 25;
    pub const REQ_CURRENT_TIME: u32 = 49;
    pub const REQ_POSITIONS: u32 = 61;
    pub const REQ_ACCOUNT_SUMMARY: u32 = 62;
    pub const START_API: u32 = 71;
    pub const REQ_POSITIONS_MULTI: u32 = 74;
    pub const REQ_ACCOUNT_UPDATES_MULTI: u32 = 76;
    pub const REQ_HEAD_TIMESTAMP: u32 = 87;
    pub const CANCEL_HEAD_TIMESTAMP: u32 = 90;
    pub const REQ_COMPLETED_ORDERS: u32 = 99;
    pub const CANCEL_CONTRACT_DATA: u32 = 106;
}

/// Message ids the server sends.
pub mod outgoing {
    pub const ERROR: u32 = 4;
    pub const NEXT_VALID_ID: u32 = 9;
    pub const CONTRACT_DATA: u32 = 10;
    pub const MANAGED_ACCOUNTS: u32 = 15;
    pub const HISTORICAL_DATA: u32 = 17;
    pub const CURRENT_TIME: u32 = 49;
    pub const CONTRACT_DATA_END: u32 = 52;
    pub const OPEN_ORDER_END: u32 = 53;
    pub const ACCOUNT_DOWNLOAD_END: u32 = 54;
    pub const EXECUTION_DATA_END: u32 = 55;
    pub const POSITION_END: u32 = 62;
    pub const ACCOUNT_SUMMARY_END: u32 = 64;
    pub const POSITION_MULTI_END: u32 = 72;
    pub const ACCOUNT_UPDATE_MULTI_END: u32 = 74;
    pub const HEAD_TIMESTAMP: u32 = 88;
    pub const COMPLETED_ORDERS_END: u32 = 102;
    pub const HISTORICAL_DATA_END: u32 = 108;
}

/// Server versions at which the wire format changes (IBKR's `MIN_SERVER_VER_*` values).
pub mod versions {
    /// The oldest client version the sim serves (IBKR's own clients' minimum too).
    pub const MIN_CLIENT: i32 = 100;
    pub const MD_SIZE_MULTIPLIER: i32 = 110;
    pub const AGG_GROUP: i32 = 121;
    pub const UNDERLYING_INFO: i32 = 122;
    /// Drops the version field of historical requests and bars' `hasGaps`; adds keepUpToDate.
    pub const SYNT_REALTIME_BARS: i32 = 124;
    pub const MARKET_RULES: i32 = 126;
    pub const REAL_EXPIRATION_DATE: i32 = 134;
    pub const STOCK_TYPE: i32 = 152;
    pub const FRACTIONAL_SIZE_SUPPORT: i32 = 163;
    /// Drops the version field of contract data; adds min size and size increments.
    pub const SIZE_RULES: i32 = 164;
    pub const ADVANCED_ORDER_REJECT: i32 = 166;
    pub const BOND_ISSUERID: i32 = 176;
    pub const LAST_TRADE_DATE: i32 = 182;
    pub const INELIGIBILITY_REASONS: i32 = 186;
    /// Drops the version field of errors; appends the error time.
    pub const ERROR_TIME: i32 = 194;
    /// Historical bars no longer carry start and end; a HistoricalDataEnd message follows.
    pub const HISTORICAL_DATA_END: i32 = 196;
    /// Message ids become 4-byte binary; protobuf messages become possible.
    pub const BINARY_IDS: i32 = 201;
    pub const PROTOBUF_COMPLETED_ORDER: i32 = 204;
    pub const PROTOBUF_CONTRACT_DATA: i32 = 205;
    pub const PROTOBUF_ACCOUNTS_POSITIONS: i32 = 207;
    pub const PROTOBUF_HISTORICAL_DATA: i32 = 208;
    pub const PROTOBUF_REST_MESSAGES_3: i32 = 213;
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
    #[error("frame does not start with a text message id: {0:?}")]
    BadTextId(String),
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

/// Splits a frame body into message id and payload, by the agreed server version.
pub fn decode_frame(body: Vec<u8>, version: i32) -> Result<Frame, WireError> {
    if version < versions::BINARY_IDS {
        let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
        let text = String::from_utf8_lossy(&body[..end]);
        let id = text
            .trim()
            .parse::<u32>()
            .map_err(|_| WireError::BadTextId(text.chars().take(32).collect()))?;
        let payload = body.get(end + 1..).unwrap_or_default().to_vec();
        return Ok(Frame {
            id,
            protobuf: false,
            payload,
        });
    }
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

/// A text message: its id (a text field below [`versions::BINARY_IDS`], 4 bytes from it on)
/// followed by NUL-terminated fields.
pub fn text_frame(version: i32, id: u32, fields: &[String]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + fields.iter().map(|f| f.len() + 1).sum::<usize>());
    if version < versions::BINARY_IDS {
        body.extend_from_slice(id.to_string().as_bytes());
        body.push(0);
    } else {
        body.extend_from_slice(&id.to_be_bytes());
    }
    for field in fields {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    with_length(&body)
}

/// The NUL-terminated text fields of a payload.
pub fn text_fields(payload: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(payload);
    let mut fields: Vec<String> = text.split('\0').map(str::to_owned).collect();
    // The last field's terminator leaves one empty piece behind.
    if fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    fields
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
        let frame = decode_frame(read_frame(&mut r).await.unwrap().unwrap(), 213).unwrap();
        assert_eq!((frame.id, frame.protobuf), (71, true));
        assert_eq!(frame.payload, vec![8, 7]);
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[test]
    fn classic_frames_carry_text_ids_and_binary_frames_four_bytes() {
        let classic = text_frame(178, 71, &["2".into(), "7".into(), String::new()]);
        assert_eq!(&classic[4..], b"71\x002\x007\x00\x00");
        let frame = decode_frame(classic[4..].to_vec(), 178).unwrap();
        assert_eq!((frame.id, frame.protobuf), (71, false));
        assert_eq!(text_fields(&frame.payload), ["2", "7", ""]);

        let binary = text_frame(205, 17, &["1".into()]);
        assert_eq!(&binary[4..], &[0, 0, 0, 17, b'1', 0]);
        let frame = decode_frame(binary[4..].to_vec(), 205).unwrap();
        assert_eq!((frame.id, frame.protobuf), (17, false));
        assert!(decode_frame(b"StartApi\0".to_vec(), 178).is_err());
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
