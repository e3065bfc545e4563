//! Compiles `proto/` with protox (pure Rust, so no `protoc` is needed on any machine) and writes
//! the encoded descriptor set next to the generated code for server reflection.

use std::path::PathBuf;

use protox::prost::Message;

const PROTO_ROOT: &str = "../../proto";

const FILES: &[&str] = &[
    "ktrdr/common/v1/common.proto",
    "ktrdr/ib/v1/ib.proto",
    "ktrdr/ib/v1/sim.proto",
    "ktrdr/data/v1/data.proto",
    "ktrdr/training/v1/backtest.proto",
    "ktrdr/training/v1/training.proto",
    "ktrdr/gateway/v1/gateway.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let descriptors = protox::compile(FILES, [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("ktrdr_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // Arrow IPC payloads decode as `Bytes` sharing the received buffer, not copied into
        // a fresh vector; a relay (the gateway) passes them on without copying them first.
        .bytes(".ktrdr.common.v1.BarBatch.arrow_ipc")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
