//! The market vocabulary every ktrdr crate shares, in one leaf crate (no RPC, no runtime):
//! [`Timeframe`], columnar [`Bars`] with the one Arrow bar schema and its IPC codec
//! ([`arrow`]), resampling ([`resample`]) and symbols ([`symbol`]).
//!
//! Services convert these to and from their wire types (`ktrdr-proto` holds the protobuf
//! conversions); nothing here knows about gRPC. ib-sim keeps its own calendar and bar generator
//! on purpose: it is an independent oracle for what IB would send, not a user of this crate's
//! rules.

pub mod arrow;
pub mod bars;
pub mod resample;
pub mod symbol;
pub mod timeframe;

pub use bars::{Bars, BarsError};
pub use resample::Resampler;
pub use symbol::{AssetClass, normalize_symbol};
pub use timeframe::{DAY_MS, HOUR_MS, MINUTE_MS, Timeframe, UnknownTimeframe};
pub mod fixtures;
