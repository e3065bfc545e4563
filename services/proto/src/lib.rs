//! The ktrdr gRPC contracts, generated from `proto/` at build time.
//!
//! One module per proto package (`ktrdr.data.v1` → [`data::v1`]); [`FILE_DESCRIPTOR_SET`] holds
//! every file so servers can offer reflection for all of them.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `google.protobuf.FileDescriptorSet` of every ktrdr `.proto` file (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ktrdr_descriptor.bin"));

pub mod bars;
mod states;

/// `pub mod <name> { pub mod v1 { … } }` for each ktrdr package `ktrdr.<name>.v1`, as
/// `tonic::include_proto!` would write it.
macro_rules! packages {
    ($($name:ident),*) => {$(
        pub mod $name {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/ktrdr.", stringify!($name), ".v1.rs"));
            }
        }
    )*};
}

packages!(common, ib, data, training, gateway);
