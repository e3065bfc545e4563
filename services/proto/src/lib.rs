//! The ktrdr gRPC contracts, generated from `proto/` at build time.
//!
//! One module per proto package (`ktrdr.data.v1` → [`data::v1`]); [`FILE_DESCRIPTOR_SET`] holds
//! every file so servers can offer reflection for all of them.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `google.protobuf.FileDescriptorSet` of every ktrdr `.proto` file (and its imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ktrdr_descriptor.bin"));

pub mod bars;

pub mod common {
    pub mod v1 {
        tonic::include_proto!("ktrdr.common.v1");
    }
}

pub mod ib {
    pub mod v1 {
        tonic::include_proto!("ktrdr.ib.v1");
    }
}

pub mod data {
    pub mod v1 {
        tonic::include_proto!("ktrdr.data.v1");
    }
}

pub mod training {
    pub mod v1 {
        tonic::include_proto!("ktrdr.training.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("ktrdr.gateway.v1");
    }
}
