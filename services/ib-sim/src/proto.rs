//! The TWS API protobuf messages ib-sim speaks, generated from `proto/ib_wire.proto`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/ibwire.rs"));
