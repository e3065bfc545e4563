//! The market vocabulary every ktrdr crate shares, in one leaf crate (no RPC, no runtime):
//! [`Timeframe`], columnar [`Bars`] with the one Arrow bar schema and its IPC codec
//! ([`arrow`]), resampling ([`resample`]), symbols ([`symbol`]), the dataset a
//! `SYMBOL_tf.csv` file name names ([`file_name`]) and the rule for names that become
//! directories ([`path`]).
//!
//! Services convert these to and from their wire types (`ktrdr-proto` holds the protobuf
//! conversions); nothing here knows about gRPC. ib-sim keeps its own calendar and bar generator
//! on purpose: it is an independent oracle for what IB would send, not a user of this crate's
//! rules.

pub mod arrow;
pub mod bars;
pub mod file_name;
pub mod path;
pub mod resample;
pub mod shown;
pub mod symbol;
pub mod timeframe;

pub use bars::{Bars, BarsError};
pub use file_name::dataset_of_file_name;
pub use resample::Resampler;
pub use symbol::{AssetClass, normalize_symbol};
pub use timeframe::{DAY_MS, HOUR_MS, MINUTE_MS, Timeframe, UnknownTimeframe};
pub mod fixtures;
