//! ib-host's one error type: IB's codes and the client library's failures, classified once and
//! mapped to `ServiceError` (and so to `tonic::Status`) per ARCHITECTURE §4.

use std::time::Duration;

use ktrdr_common::ServiceError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IbError {
    /// No usable connection to TWS / IB Gateway (never connected, dropped, 502/504/1100).
    #[error("IB not connected at {address}: {detail}")]
    Disconnected { address: String, detail: String },
    /// 162 "pacing violation" that retries did not get past.
    #[error("IB pacing violation: {message}")]
    Pacing {
        message: String,
        retry_after: Duration,
    },
    /// 200: no security definition.
    #[error("no IB contract for {symbol}: {message}")]
    UnknownContract { symbol: String, message: String },
    /// 162 "HMDS query returned no data".
    #[error("IB has no data: {message}")]
    NoData { message: String },
    /// 162/354 without market-data permission.
    #[error("no IB market-data permission: {message}")]
    Permission { message: String },
    /// 321: IB refused the request as malformed.
    #[error("IB rejected the request ({code}): {message}")]
    Rejected { code: i32, message: String },
    /// Any other IB error code.
    #[error("IB error {code}: {message}")]
    Ib { code: i32, message: String },
    /// IB did not answer within the per-request timeout.
    #[error("IB did not answer within {0:?}")]
    Timeout(Duration),
    /// A bad argument, caught before asking IB.
    #[error("{0}")]
    Invalid(ServiceError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IbError {
    /// Classifies an `ibapi` error (IB codes arrive as `Error::Notice`).
    pub fn from_ibapi(err: ibapi::Error, address: &str, symbol: &str) -> Self {
        use ibapi::Error as E;
        match err {
            E::Notice(n) => Self::from_code(n.code, &n.message, address, symbol),
            E::Timeout => Self::Timeout(Duration::ZERO),
            E::ClientIdInUse { client_id } => Self::Disconnected {
                address: address.to_owned(),
                detail: format!("client id {client_id} in use"),
            },
            e @ (E::ConnectionReset
            | E::ConnectionFailed
            | E::ConnectionRejected(_)
            | E::Shutdown
            | E::Io(_)
            | E::EndOfStream
            | E::UnexpectedEndOfStream
            | E::Cancelled) => Self::Disconnected {
                address: address.to_owned(),
                detail: e.to_string(),
            },
            other => Self::Internal(other.to_string()),
        }
    }

    /// IB's error codes (anchors §2.3), 162 split by its text.
    pub fn from_code(code: i32, message: &str, address: &str, symbol: &str) -> Self {
        let lower = message.to_ascii_lowercase();
        match code {
            162 if lower.contains("pacing violation") => Self::Pacing {
                message: message.to_owned(),
                retry_after: Duration::from_secs(15),
            },
            162 if lower.contains("no data") || lower.contains("no historical market data") => {
                Self::NoData {
                    message: message.to_owned(),
                }
            }
            162 | 354 if lower.contains("permission") || lower.contains("not subscribed") => {
                Self::Permission {
                    message: message.to_owned(),
                }
            }
            200 => Self::UnknownContract {
                symbol: symbol.to_owned(),
                message: message.to_owned(),
            },
            321 => Self::Rejected {
                code,
                message: message.to_owned(),
            },
            502 | 504 | 1100 => Self::Disconnected {
                address: address.to_owned(),
                detail: format!("{code} {message}"),
            },
            _ => Self::Ib {
                code,
                message: message.to_owned(),
            },
        }
    }

    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected { .. })
    }
}

impl From<IbError> for ServiceError {
    fn from(err: IbError) -> Self {
        let message = err.to_string();
        match err {
            IbError::Disconnected { address, .. } => ServiceError::Unavailable {
                reason: "IB_DISCONNECTED".to_owned(),
                service: "ib".to_owned(),
                url: address,
                message: format!(
                    "{message} — ib-host reconnects in the background; retry shortly, and check that IB Gateway/TWS (or ktrdr-ib-sim) runs at IB_HOST:IB_PORT"
                ),
                retry_after: Duration::from_secs(1),
            },
            IbError::Pacing { retry_after, .. } => {
                ServiceError::resource_exhausted("IB_PACING_VIOLATION", message, Some(retry_after))
            }
            IbError::UnknownContract { symbol, .. } => {
                ServiceError::not_found("UNKNOWN_SYMBOL", message).with_metadata("symbol", symbol)
            }
            IbError::NoData { .. } => ServiceError::not_found("IB_NO_DATA", message),
            IbError::Permission { .. } => {
                ServiceError::permission_denied("IB_NO_PERMISSION", message)
            }
            IbError::Rejected { code, .. } => ServiceError::invalid_argument(
                "request",
                format!("IB refused the request (code {code}): {message}"),
            ),
            // 322: IB failed while processing a valid request; nothing the caller can fix.
            IbError::Ib { code: 322, .. } => ServiceError::internal(message),
            // 366: IB no longer knows the query (it dropped or cancelled it); a retry may work.
            IbError::Ib { code: 366, .. } => {
                ServiceError::aborted("IB_QUERY_DROPPED", message).with_metadata("ib_code", "366")
            }
            IbError::Ib { code, .. } => ServiceError::failed_precondition("IB_ERROR", message)
                .with_metadata("ib_code", code.to_string()),
            IbError::Timeout(_) => ServiceError::DeadlineExceeded { message },
            IbError::Invalid(e) => e,
            IbError::Internal(_) => ServiceError::internal(message),
        }
    }
}

impl From<IbError> for tonic::Status {
    fn from(err: IbError) -> Self {
        ServiceError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn code(e: IbError) -> Code {
        tonic::Status::from(e).code()
    }

    #[test]
    fn ib_codes_map_per_architecture() {
        let a = "127.0.0.1:4002";
        let pacing = IbError::from_code(
            162,
            "Historical Market Data Service error message:Historical data request pacing violation",
            a,
            "AAPL",
        );
        assert!(matches!(pacing, IbError::Pacing { .. }));
        assert_eq!(code(pacing), Code::ResourceExhausted);
        let none = IbError::from_code(
            162,
            "Historical Market Data Service error message:HMDS query returned no data: AAPL",
            a,
            "AAPL",
        );
        assert!(matches!(none, IbError::NoData { .. }));
        assert_eq!(
            code(IbError::from_code(200, "No security definition", a, "NOPE")),
            Code::NotFound
        );
        assert_eq!(
            code(IbError::from_code(504, "Not connected", a, "")),
            Code::Unavailable
        );
        assert_eq!(
            code(IbError::from_code(321, "Error validating request", a, "")),
            Code::InvalidArgument
        );
        assert_eq!(
            code(IbError::from_code(
                354,
                "Requested market data is not subscribed.",
                a,
                ""
            )),
            Code::PermissionDenied
        );
        assert_eq!(
            code(IbError::from_code(
                366,
                "No historical data query found for ticker id:1",
                a,
                ""
            )),
            Code::Aborted
        );
        assert_eq!(
            code(IbError::from_code(322, "Error processing request", a, "")),
            Code::Internal
        );
        assert_eq!(
            code(IbError::from_ibapi(ibapi::Error::ConnectionReset, a, "")),
            Code::Unavailable
        );
    }
}
