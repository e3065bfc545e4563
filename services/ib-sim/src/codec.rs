//! Every message the sim exchanges, in the encoding the agreed server version calls for.
//!
//! A [`Codec`] holds the server version agreed with one client (see [`negotiate`]).
//! - Requests decode into one [`Request`] whatever their encoding: a protobuf payload when
//!   the client sent one (ids above 200), otherwise NUL-separated text fields read with the
//!   layout IBKR's clients write at that version.
//! - Replies are built from the protobuf types of [`crate::proto`] and go out as protobuf from
//!   the version at which IBKR moved their request family to protobuf ([`protobuf_from`]), as
//!   text fields before it, laid out as IBKR's own decoders read them at that version (the
//!   pre-196 historical bars carry their start and end inline; from 196 a HistoricalDataEnd
//!   follows).
//!
//! Invariant: field orders live here only; the session never assembles a frame itself.

use prost::Message;

use crate::proto as ib;
use crate::wire::{self, Frame, incoming as inc, outgoing as out, versions as v};

/// Request kinds, for counters and fault matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Historical,
    HeadTimestamp,
    ContractDetails,
    CancelHistorical,
    CancelHeadTimestamp,
    CancelContractDetails,
    /// Account and order state a client syncs at connect (positions, orders, executions…).
    AccountSync,
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Historical => "historical_data",
            Self::HeadTimestamp => "head_timestamp",
            Self::ContractDetails => "contract_details",
            Self::CancelHistorical => "cancel_historical_data",
            Self::CancelHeadTimestamp => "cancel_head_timestamp",
            Self::CancelContractDetails => "cancel_contract_details",
            Self::AccountSync => "account_sync",
            Self::Other => "other",
        }
    }
}

/// The account every client sees: an empty paper account.
pub const ACCOUNT: &str = "DU1234567";

/// The server version agreed with a client offering `client_min..=client_max`, or why the
/// client is refused. TWS answers with the highest version both sides speak.
pub fn negotiate(sim_max: i32, client_min: i32, client_max: i32) -> Result<i32, String> {
    if client_max < v::MIN_CLIENT {
        return Err(format!(
            "unsupported version: the client speaks v{client_min}..{client_max}, the sim needs at least v{}",
            v::MIN_CLIENT
        ));
    }
    let version = sim_max.min(client_max);
    if version < client_min || version < v::MIN_CLIENT {
        return Err(format!(
            "unsupported version: the client speaks v{client_min}..{client_max}, the sim v{}..{sim_max}",
            v::MIN_CLIENT
        ));
    }
    Ok(version)
}

/// The server version from which a reply travels as protobuf: the version at which IBKR's
/// clients send the request it answers as protobuf.
pub fn protobuf_from(id: u32) -> i32 {
    match id {
        out::ERROR | out::EXECUTION_DATA_END => v::BINARY_IDS,
        out::OPEN_ORDER_END | out::COMPLETED_ORDERS_END => v::PROTOBUF_COMPLETED_ORDER,
        out::CONTRACT_DATA | out::CONTRACT_DATA_END => v::PROTOBUF_CONTRACT_DATA,
        out::MANAGED_ACCOUNTS
        | out::POSITION_END
        | out::ACCOUNT_DOWNLOAD_END
        | out::ACCOUNT_SUMMARY_END
        | out::POSITION_MULTI_END
        | out::ACCOUNT_UPDATE_MULTI_END => v::PROTOBUF_ACCOUNTS_POSITIONS,
        out::HISTORICAL_DATA | out::HISTORICAL_DATA_END | out::HEAD_TIMESTAMP => {
            v::PROTOBUF_HISTORICAL_DATA
        }
        _ => v::PROTOBUF_REST_MESSAGES_3,
    }
}

/// Account and order state a client asks for when it connects; each is answered with its
/// "end" message (nothing to report in an empty paper account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    Positions,
    OpenOrders,
    CompletedOrders,
    AccountUpdates { subscribe: bool, account: String },
    AccountSummary { req_id: i32 },
    Executions { req_id: i32 },
    PositionsMulti { req_id: i32 },
    AccountUpdatesMulti { req_id: i32 },
    Ids,
    ManagedAccounts,
    CurrentTime,
}

/// One decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    StartApi {
        client_id: i32,
    },
    ContractDetails(ib::ContractDataRequest),
    Historical(ib::HistoricalDataRequest),
    HeadTimestamp(ib::HeadTimestampRequest),
    Cancel {
        kind: Kind,
        req_id: i32,
    },
    Sync(Sync),
    /// A message the sim does not serve (market data, orders, …).
    Unsupported(u32),
    /// A message the sim serves whose payload could not be read.
    Malformed(u32),
}

/// Reads NUL-separated text fields in order; `None` when a field is missing or unreadable.
struct Fields(std::vec::IntoIter<String>);

impl Fields {
    fn new(payload: &[u8]) -> Self {
        Self(wire::text_fields(payload).into_iter())
    }

    fn str(&mut self) -> Option<String> {
        self.0.next()
    }

    fn skip(&mut self) -> Option<()> {
        self.str().map(|_| ())
    }

    fn int(&mut self) -> Option<i32> {
        let s = self.str()?;
        let s = s.trim();
        if s.is_empty() {
            Some(0)
        } else {
            s.parse().ok()
        }
    }

    fn float(&mut self) -> Option<Option<f64>> {
        let s = self.str()?;
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    }

    fn bool(&mut self) -> Option<bool> {
        Some(self.int()? != 0)
    }

    /// conId, symbol, secType, lastTradeDateOrContractMonth, strike, right, multiplier,
    /// exchange, primaryExchange, currency, localSymbol, tradingClass, then includeExpired:
    /// the layout of every client version the sim serves (from 100).
    fn contract(&mut self) -> Option<ib::Contract> {
        let con_id = Some(self.int()?);
        let symbol = Some(self.str()?);
        let sec_type = Some(self.str()?);
        let last_trade_date_or_contract_month = Some(self.str()?);
        let strike = self.float()?;
        let right = Some(self.str()?);
        let multiplier = self.float()?;
        let exchange = Some(self.str()?);
        let primary_exch = Some(self.str()?);
        let currency = Some(self.str()?);
        let local_symbol = Some(self.str()?);
        let trading_class = Some(self.str()?);
        let include_expired = Some(self.bool()?);
        Some(ib::Contract {
            con_id,
            symbol,
            sec_type,
            last_trade_date_or_contract_month,
            strike,
            right,
            multiplier,
            exchange,
            primary_exch,
            currency,
            local_symbol,
            trading_class,
            include_expired,
            last_trade_date: None,
        })
    }
}

fn decode<M: Message + Default>(frame: &Frame) -> Option<M> {
    M::decode(frame.payload.as_slice())
        .map_err(|e| tracing::warn!(id = frame.id, error = %e, "undecodable protobuf message"))
        .ok()
}

/// Encodes and decodes the messages of one connection at its agreed server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub version: i32,
}

impl Codec {
    pub fn new(version: i32) -> Self {
        Self { version }
    }

    /// Decodes a client message; malformed ones are reported, not fatal (TWS ignores them).
    pub fn request(&self, frame: &Frame) -> Request {
        let decoded = if frame.protobuf {
            self.protobuf_request(frame)
        } else {
            self.text_request(frame.id, &mut Fields::new(&frame.payload))
        };
        decoded.unwrap_or(Request::Malformed(frame.id))
    }

    fn protobuf_request(&self, frame: &Frame) -> Option<Request> {
        let req_id = || decode::<ib::ReqId>(frame).map(|m| m.req_id.unwrap_or(0));
        let cancel = |kind| req_id().map(|req_id| Request::Cancel { kind, req_id });
        Some(match frame.id {
            inc::START_API => Request::StartApi {
                client_id: decode::<ib::StartApiRequest>(frame)?.client_id.unwrap_or(0),
            },
            inc::REQ_CONTRACT_DATA => Request::ContractDetails(decode(frame)?),
            inc::REQ_HISTORICAL_DATA => Request::Historical(decode(frame)?),
            inc::REQ_HEAD_TIMESTAMP => Request::HeadTimestamp(decode(frame)?),
            inc::CANCEL_HISTORICAL_DATA => cancel(Kind::CancelHistorical)?,
            inc::CANCEL_HEAD_TIMESTAMP => cancel(Kind::CancelHeadTimestamp)?,
            inc::CANCEL_CONTRACT_DATA => cancel(Kind::CancelContractDetails)?,
            inc::REQ_ACCOUNT_DATA => {
                let r = decode::<ib::AccountDataRequest>(frame)?;
                Request::Sync(Sync::AccountUpdates {
                    subscribe: r.subscribe.unwrap_or(false),
                    account: r.acct_code.unwrap_or_default(),
                })
            }
            inc::REQ_EXECUTIONS => Request::Sync(Sync::Executions { req_id: req_id()? }),
            inc::REQ_ACCOUNT_SUMMARY => Request::Sync(Sync::AccountSummary { req_id: req_id()? }),
            inc::REQ_POSITIONS_MULTI => Request::Sync(Sync::PositionsMulti { req_id: req_id()? }),
            inc::REQ_ACCOUNT_UPDATES_MULTI => {
                Request::Sync(Sync::AccountUpdatesMulti { req_id: req_id()? })
            }
            other => Self::payloadless(other),
        })
    }

    /// Requests whose payload the sim does not need.
    fn payloadless(id: u32) -> Request {
        match id {
            inc::REQ_POSITIONS => Request::Sync(Sync::Positions),
            inc::REQ_OPEN_ORDERS | inc::REQ_ALL_OPEN_ORDERS => Request::Sync(Sync::OpenOrders),
            inc::REQ_COMPLETED_ORDERS => Request::Sync(Sync::CompletedOrders),
            inc::REQ_IDS => Request::Sync(Sync::Ids),
            inc::REQ_MANAGED_ACCOUNTS => Request::Sync(Sync::ManagedAccounts),
            inc::REQ_CURRENT_TIME => Request::Sync(Sync::CurrentTime),
            other => Request::Unsupported(other),
        }
    }

    fn text_request(&self, id: u32, f: &mut Fields) -> Option<Request> {
        let old_historical = self.version < v::SYNT_REALTIME_BARS;
        Some(match id {
            inc::START_API => {
                f.skip()?; // version
                Request::StartApi {
                    client_id: f.int()?,
                }
            }
            inc::REQ_CONTRACT_DATA => {
                f.skip()?; // version
                let req_id = Some(f.int()?);
                let contract = Some(f.contract()?);
                Request::ContractDetails(ib::ContractDataRequest { req_id, contract })
            }
            inc::REQ_HISTORICAL_DATA => {
                if old_historical {
                    f.skip()?; // version
                }
                let req_id = Some(f.int()?);
                let contract = Some(f.contract()?);
                let end_date_time = Some(f.str()?);
                let bar_size_setting = Some(f.str()?);
                let duration = Some(f.str()?);
                let use_rth = Some(f.bool()?);
                let what_to_show = Some(f.str()?);
                let format_date = Some(f.int()?);
                Request::Historical(ib::HistoricalDataRequest {
                    req_id,
                    contract,
                    end_date_time,
                    bar_size_setting,
                    duration,
                    use_rth,
                    what_to_show,
                    format_date,
                    // Combo legs (BAG contracts, which the sim does not list) precede it.
                    keep_up_to_date: None,
                })
            }
            inc::REQ_HEAD_TIMESTAMP => {
                let req_id = Some(f.int()?);
                let contract = Some(f.contract()?);
                let use_rth = Some(f.bool()?);
                let what_to_show = Some(f.str()?);
                let format_date = Some(f.int()?);
                Request::HeadTimestamp(ib::HeadTimestampRequest {
                    req_id,
                    contract,
                    use_rth,
                    what_to_show,
                    format_date,
                })
            }
            inc::CANCEL_HISTORICAL_DATA => {
                f.skip()?; // version
                Request::Cancel {
                    kind: Kind::CancelHistorical,
                    req_id: f.int()?,
                }
            }
            inc::CANCEL_HEAD_TIMESTAMP => Request::Cancel {
                kind: Kind::CancelHeadTimestamp,
                req_id: f.int()?,
            },
            inc::CANCEL_CONTRACT_DATA => Request::Cancel {
                kind: Kind::CancelContractDetails,
                req_id: f.int()?,
            },
            inc::REQ_ACCOUNT_DATA => {
                f.skip()?; // version
                let subscribe = f.bool()?;
                let account = f.str().unwrap_or_default();
                Request::Sync(Sync::AccountUpdates { subscribe, account })
            }
            inc::REQ_EXECUTIONS
            | inc::REQ_ACCOUNT_SUMMARY
            | inc::REQ_POSITIONS_MULTI
            | inc::REQ_ACCOUNT_UPDATES_MULTI => {
                f.skip()?; // version
                let req_id = f.int()?;
                Request::Sync(match id {
                    inc::REQ_EXECUTIONS => Sync::Executions { req_id },
                    inc::REQ_ACCOUNT_SUMMARY => Sync::AccountSummary { req_id },
                    inc::REQ_POSITIONS_MULTI => Sync::PositionsMulti { req_id },
                    _ => Sync::AccountUpdatesMulti { req_id },
                })
            }
            other => Self::payloadless(other),
        })
    }

    /// `message` as protobuf from its type's protobuf version, else the text `fields`.
    fn encode(
        &self,
        id: u32,
        message: &impl Message,
        fields: impl FnOnce() -> Vec<String>,
    ) -> Vec<u8> {
        if self.version >= protobuf_from(id) {
            wire::proto_frame(id, message)
        } else {
            wire::text_frame(self.version, id, &fields())
        }
    }

    /// An error or notice for request `id` (-1: the connection).
    pub fn error(&self, id: i32, code: i32, message: &str, time_ms: i64) -> Vec<u8> {
        let msg = ib::ErrorMessage {
            id: Some(id),
            error_time: Some(time_ms),
            error_code: Some(code),
            error_msg: Some(message.to_owned()),
            advanced_order_reject_json: None,
        };
        self.encode(out::ERROR, &msg, || {
            let mut f = vec![];
            if self.version < v::ERROR_TIME {
                f.push("2".to_owned());
            }
            f.extend([id.to_string(), code.to_string(), message.to_owned()]);
            if self.version >= v::ADVANCED_ORDER_REJECT {
                f.push(String::new());
            }
            if self.version >= v::ERROR_TIME {
                f.push(time_ms.to_string());
            }
            f
        })
    }

    pub fn next_valid_id(&self, order_id: i32) -> Vec<u8> {
        let msg = ib::NextValidId {
            order_id: Some(order_id),
        };
        self.encode(out::NEXT_VALID_ID, &msg, || {
            vec!["1".into(), order_id.to_string()]
        })
    }

    pub fn managed_accounts(&self, accounts: &str) -> Vec<u8> {
        let msg = ib::ManagedAccounts {
            accounts_list: Some(accounts.to_owned()),
        };
        self.encode(out::MANAGED_ACCOUNTS, &msg, || {
            vec!["1".into(), accounts.to_owned()]
        })
    }

    pub fn current_time(&self, unix_secs: i64) -> Vec<u8> {
        let msg = ib::CurrentTime {
            current_time: Some(unix_secs),
        };
        self.encode(out::CURRENT_TIME, &msg, || {
            vec!["1".into(), unix_secs.to_string()]
        })
    }

    pub fn contract_data(&self, data: &ib::ContractData) -> Vec<u8> {
        self.encode(out::CONTRACT_DATA, data, || self.contract_data_fields(data))
    }

    fn contract_data_fields(&self, data: &ib::ContractData) -> Vec<String> {
        let version = self.version;
        let c = data.contract.clone().unwrap_or_default();
        let d = data.contract_details.clone().unwrap_or_default();
        let s = |x: Option<String>| x.unwrap_or_default();
        let mut f = vec![];
        if version < v::SIZE_RULES {
            f.push("8".to_owned());
        }
        f.push(data.req_id.unwrap_or(-1).to_string());
        f.push(s(c.symbol));
        f.push(s(c.sec_type.clone()));
        f.push(s(c.last_trade_date_or_contract_month));
        if version >= v::LAST_TRADE_DATE {
            f.push(s(c.last_trade_date));
        }
        f.push(number(c.strike.unwrap_or(0.0)));
        f.push(s(c.right));
        f.push(s(c.exchange));
        f.push(s(c.currency));
        f.push(s(c.local_symbol));
        f.push(s(d.market_name));
        f.push(s(c.trading_class));
        f.push(c.con_id.unwrap_or(0).to_string());
        f.push(s(d.min_tick));
        if (v::MD_SIZE_MULTIPLIER..v::SIZE_RULES).contains(&version) {
            f.push("1".to_owned()); // mdSizeMultiplier
        }
        f.push(c.multiplier.map(number).unwrap_or_default());
        f.push(s(d.order_types));
        f.push(s(d.valid_exchanges));
        f.push(d.price_magnifier.unwrap_or(1).to_string());
        f.push(d.under_con_id.unwrap_or(0).to_string());
        f.push(s(d.long_name));
        f.push(s(c.primary_exch));
        f.push(s(d.contract_month));
        f.push(s(d.industry));
        f.push(s(d.category));
        f.push(s(d.subcategory));
        f.push(s(d.time_zone_id));
        f.push(s(d.trading_hours));
        f.push(s(d.liquid_hours));
        f.push(String::new()); // evRule
        f.push("0".to_owned()); // evMultiplier
        f.push("0".to_owned()); // secIdList count
        if version >= v::AGG_GROUP {
            f.push("1".to_owned());
        }
        if version >= v::UNDERLYING_INFO {
            f.extend([String::new(), String::new()]); // underSymbol, underSecType
        }
        if version >= v::MARKET_RULES {
            f.push(String::new());
        }
        if version >= v::REAL_EXPIRATION_DATE {
            f.push(s(d.real_expiration_date));
        }
        if version >= v::STOCK_TYPE {
            f.push(s(d.stock_type));
        }
        let increment = s(d.size_increment);
        if version == v::FRACTIONAL_SIZE_SUPPORT {
            f.push(increment.clone()); // sizeMinTick
        }
        if version >= v::SIZE_RULES {
            f.extend([s(d.min_size), increment.clone(), increment]);
        }
        // Fund fields follow only for FUND contracts, which the sim does not list.
        if version >= v::INELIGIBILITY_REASONS {
            f.push("0".to_owned());
        }
        f
    }

    pub fn contract_data_end(&self, req_id: i32) -> Vec<u8> {
        self.request_end(out::CONTRACT_DATA_END, req_id)
    }

    /// An "end" message that carries only the request id (and a version field as text).
    fn request_end(&self, id: u32, req_id: i32) -> Vec<u8> {
        let msg = ib::ReqId {
            req_id: Some(req_id),
        };
        self.encode(id, &msg, || vec!["1".into(), req_id.to_string()])
    }

    pub fn head_timestamp(&self, msg: &ib::HeadTimestamp) -> Vec<u8> {
        self.encode(out::HEAD_TIMESTAMP, msg, || {
            vec![
                msg.req_id.unwrap_or(-1).to_string(),
                msg.head_timestamp.clone().unwrap_or_default(),
            ]
        })
    }

    /// A historical answer: the bars, then their end (inline before version 196).
    pub fn historical(&self, data: &ib::HistoricalData, end: &ib::HistoricalDataEnd) -> Vec<u8> {
        let version = self.version;
        let start_text = end.start_date_str.clone().unwrap_or_default();
        let end_text = end.end_date_str.clone().unwrap_or_default();
        let mut frames = self.encode(out::HISTORICAL_DATA, data, || {
            let mut f = vec![];
            if version < v::SYNT_REALTIME_BARS {
                f.push("3".to_owned());
            }
            f.push(data.req_id.unwrap_or(-1).to_string());
            if version < v::HISTORICAL_DATA_END {
                f.extend([start_text.clone(), end_text.clone()]);
            }
            f.push(data.historical_data_bars.len().to_string());
            for bar in &data.historical_data_bars {
                f.push(bar.date.clone().unwrap_or_default());
                for price in [bar.open, bar.high, bar.low, bar.close] {
                    f.push(number(price.unwrap_or(0.0)));
                }
                f.push(bar.volume.clone().unwrap_or_default());
                f.push(bar.wap.clone().unwrap_or_default());
                if version < v::SYNT_REALTIME_BARS {
                    f.push("false".to_owned()); // hasGaps
                }
                f.push(bar.bar_count.unwrap_or(-1).to_string());
            }
            f
        });
        if version >= v::HISTORICAL_DATA_END {
            frames.extend(self.encode(out::HISTORICAL_DATA_END, end, || {
                vec![end.req_id.unwrap_or(-1).to_string(), start_text, end_text]
            }));
        }
        frames
    }

    /// The answer to a connect-time request of an empty paper account; `None` when TWS sends
    /// nothing (an unsubscribe).
    pub fn sync_reply(&self, sync: &Sync, next_order_id: i32, now_secs: i64) -> Option<Vec<u8>> {
        let req_end = |id, req_id| self.request_end(id, req_id);
        Some(match sync {
            Sync::Positions => {
                self.encode(out::POSITION_END, &ib::PositionEnd {}, || vec!["1".into()])
            }
            Sync::OpenOrders => self.encode(out::OPEN_ORDER_END, &ib::OpenOrdersEnd {}, || {
                vec!["1".into()]
            }),
            Sync::CompletedOrders => self.encode(
                out::COMPLETED_ORDERS_END,
                &ib::CompletedOrdersEnd {},
                Vec::new,
            ),
            Sync::AccountUpdates { subscribe, account } => {
                if !subscribe {
                    return None;
                }
                let account = if account.is_empty() {
                    ACCOUNT
                } else {
                    account.as_str()
                };
                let msg = ib::AccountDataEnd {
                    account_name: Some(account.to_owned()),
                };
                self.encode(out::ACCOUNT_DOWNLOAD_END, &msg, || {
                    vec!["1".into(), account.to_owned()]
                })
            }
            Sync::AccountSummary { req_id } => req_end(out::ACCOUNT_SUMMARY_END, *req_id),
            Sync::Executions { req_id } => req_end(out::EXECUTION_DATA_END, *req_id),
            Sync::PositionsMulti { req_id } => req_end(out::POSITION_MULTI_END, *req_id),
            Sync::AccountUpdatesMulti { req_id } => req_end(out::ACCOUNT_UPDATE_MULTI_END, *req_id),
            Sync::Ids => self.next_valid_id(next_order_id),
            Sync::ManagedAccounts => self.managed_accounts(ACCOUNT),
            Sync::CurrentTime => self.current_time(now_secs),
        })
    }
}

/// A double as IBKR's text protocol carries it: the shortest text that reads back exactly.
fn number(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(frame: &[u8], version: i32) -> (u32, Vec<String>) {
        let frame = wire::decode_frame(frame[4..].to_vec(), version).unwrap();
        assert!(!frame.protobuf);
        (frame.id, wire::text_fields(&frame.payload))
    }

    fn text_request(version: i32, id: u32, fields: &[&str]) -> Request {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let frame = wire::text_frame(version, id, &fields);
        Codec::new(version).request(&wire::decode_frame(frame[4..].to_vec(), version).unwrap())
    }

    #[test]
    fn negotiation_picks_the_highest_common_version_and_refuses_too_old_clients() {
        assert_eq!(negotiate(213, 157, 178), Ok(178));
        assert_eq!(negotiate(213, 213, 226), Ok(213));
        assert_eq!(negotiate(176, 100, 178), Ok(176));
        assert!(
            negotiate(213, 60, 99)
                .unwrap_err()
                .contains("unsupported version")
        );
        assert!(negotiate(213, 214, 226).is_err());
    }

    #[test]
    fn replies_switch_to_protobuf_per_message_family() {
        assert!(
            !wire::decode_frame(Codec::new(204).contract_data_end(1)[4..].to_vec(), 204)
                .unwrap()
                .protobuf
        );
        assert!(
            wire::decode_frame(Codec::new(205).contract_data_end(1)[4..].to_vec(), 205)
                .unwrap()
                .protobuf
        );
        let (id, f) = fields_of(&Codec::new(178).contract_data_end(7), 178);
        assert_eq!((id, f), (52, vec!["1".to_owned(), "7".to_owned()]));
    }

    #[test]
    fn errors_carry_their_fields_by_version() {
        let (_, old) = fields_of(&Codec::new(160).error(3, 200, "none", 5), 160);
        assert_eq!(old, ["2", "3", "200", "none"]);
        let (_, classic) = fields_of(&Codec::new(178).error(3, 200, "none", 5), 178);
        assert_eq!(classic, ["2", "3", "200", "none", ""]);
        let (_, timed) = fields_of(&Codec::new(195).error(3, 200, "none", 5), 195);
        assert_eq!(timed, ["3", "200", "none", "", "5"]);
    }

    #[test]
    fn historical_bars_carry_start_and_end_inline_before_196_and_in_an_end_message_after() {
        let data = ib::HistoricalData {
            req_id: Some(4),
            historical_data_bars: vec![ib::HistoricalDataBar {
                date: Some("1707229800".into()),
                open: Some(1.5),
                high: Some(2.0),
                low: Some(1.25),
                close: Some(1.75),
                volume: Some("100".into()),
                wap: Some("1.6".into()),
                bar_count: Some(3),
            }],
        };
        let end = ib::HistoricalDataEnd {
            req_id: Some(4),
            start_date_str: Some("s".into()),
            end_date_str: Some("e".into()),
        };
        let (id, inline) = fields_of(&Codec::new(178).historical(&data, &end), 178);
        assert_eq!(id, 17);
        assert_eq!(
            inline,
            [
                "4",
                "s",
                "e",
                "1",
                "1707229800",
                "1.5",
                "2",
                "1.25",
                "1.75",
                "100",
                "1.6",
                "3"
            ]
        );
        let (_, oldest) = fields_of(&Codec::new(120).historical(&data, &end), 120);
        assert_eq!(oldest[..4], ["3", "4", "s", "e"]);
        assert_eq!(oldest[oldest.len() - 2], "false");

        let both = Codec::new(200).historical(&data, &end);
        let first_len = u32::from_be_bytes([both[0], both[1], both[2], both[3]]) as usize;
        let (_, bars) = fields_of(&both[..4 + first_len], 200);
        assert_eq!(bars[..2], ["4", "1"]);
        let (id, tail) = fields_of(&both[4 + first_len..], 200);
        assert_eq!((id, tail), (108, vec!["4".into(), "s".into(), "e".into()]));
    }

    #[test]
    fn contract_data_has_as_many_fields_as_ibkr_decoders_read() {
        let data = ib::ContractData {
            req_id: Some(1),
            contract: Some(ib::Contract {
                symbol: Some("AAPL".into()),
                ..Default::default()
            }),
            contract_details: Some(ib::ContractDetails::default()),
        };
        // 178: the layout ib_async reads (39 fields after the id, the three size fields last).
        let (_, f) = fields_of(&Codec::new(178).contract_data(&data), 178);
        assert_eq!(f.len(), 39);
        assert_eq!(f[1], "AAPL");
        // 150: a version field and mdSizeMultiplier; no stock type, no size rules.
        let (_, old) = fields_of(&Codec::new(150).contract_data(&data), 150);
        assert_eq!((old[0].as_str(), old.len()), ("8", 37));
        // 190: lastTradeDate and an empty ineligibility list on top.
        let (_, newer) = fields_of(&Codec::new(190).contract_data(&data), 190);
        assert_eq!(newer.len(), 41);
    }

    #[test]
    fn classic_requests_decode_like_their_protobuf_twins() {
        let contract = [
            "0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", "", "0",
        ];
        let mut fields = vec![
            "11",
            "20240207 00:00:00 UTC",
            "1 min",
            "1 D",
            "1",
            "TRADES",
            "2",
        ];
        fields.splice(1..1, contract);
        let Request::Historical(req) = text_request(178, inc::REQ_HISTORICAL_DATA, &fields) else {
            panic!("not a historical request")
        };
        assert_eq!(req.req_id, Some(11));
        assert_eq!(req.bar_size_setting.as_deref(), Some("1 min"));
        assert_eq!(req.duration.as_deref(), Some("1 D"));
        assert_eq!(req.use_rth, Some(true));
        assert_eq!(req.contract.unwrap().symbol.as_deref(), Some("AAPL"));

        let mut old = vec!["6"];
        old.extend(&fields);
        assert!(matches!(
            text_request(110, inc::REQ_HISTORICAL_DATA, &old),
            Request::Historical(r) if r.req_id == Some(11)
        ));
        assert_eq!(
            text_request(178, inc::START_API, &["2", "9", ""]),
            Request::StartApi { client_id: 9 }
        );
        assert_eq!(
            text_request(178, inc::REQ_ACCOUNT_DATA, &["2", "1", "DU1"]),
            Request::Sync(Sync::AccountUpdates {
                subscribe: true,
                account: "DU1".into()
            })
        );
        assert_eq!(
            text_request(178, inc::CANCEL_HISTORICAL_DATA, &["1", "11"]),
            Request::Cancel {
                kind: Kind::CancelHistorical,
                req_id: 11
            }
        );
        assert_eq!(
            text_request(178, inc::REQ_HEAD_TIMESTAMP, &["5", "0"]),
            Request::Malformed(inc::REQ_HEAD_TIMESTAMP)
        );
        assert_eq!(text_request(178, 1, &["11"]), Request::Unsupported(1));
    }
}
