//! Compiles ib-sim's private subset of the TWS API protobuf messages with protox (no `protoc`).

use std::path::PathBuf;

const FILES: &[&str] = &["ib_wire.proto"];
const ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _out = PathBuf::from(std::env::var("OUT_DIR")?);
    for file in FILES {
        println!("cargo:rerun-if-changed={ROOT}/{file}");
    }
    let descriptors = protox::compile(FILES, [ROOT])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
