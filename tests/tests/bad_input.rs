//! A bounded sweep of bad input over every method of every service, against the real binaries:
//! the methods come from the contracts' descriptors, so a new method is swept without touching
//! this file. Each method gets an empty message, messages with every field set to hostile
//! strings, negative numbers, huge numbers and undefined enum values (nested messages too), and
//! bytes that are not protobuf at all. Every call must be answered before its deadline, never
//! with UNKNOWN or INTERNAL, and no service may log a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ktrdr_system_tests::stack::{FAST_PACING, InProcess, Stack};
use ktrdr_system_tests::{SERVICE_BINARIES, ServiceProcess, raw};
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;

/// Deadline of every call; a call still running then is a failure of the sweep.
const DEADLINE: Duration = Duration::from_secs(30);
/// How deep nested messages are filled (100 kB strings only at the top, to stay a bounded size).
fn depth_of(fill: Fill) -> usize {
    match fill {
        Fill::HugeStrings => 1,
        _ => 4,
    }
}

/// What every field of a generated message is set to.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Traversal, control characters, unicode tricks, separators.
    HostileStrings,
    /// 100 kB in every string and bytes field.
    HugeStrings,
    /// -1 in every number and enum, NaN in floats.
    Negative,
    /// The largest values: i64::MAX, u64::MAX, f64::MAX, enum 999.
    Huge,
}

const FILLS: [Fill; 4] = [
    Fill::HostileStrings,
    Fill::HugeStrings,
    Fill::Negative,
    Fill::Huge,
];

/// Bytes that do not decode as any message: an unterminated varint, a field whose length runs
/// past the end, a group start (unsupported in proto3).
const NOT_PROTOBUF: [&[u8]; 3] = [
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ],
    &[0x0a, 0x7f, 0x41, 0x42],
    &[0x0b, 0x01],
];

const HOSTILE: [&str; 6] = [
    "../../../../etc/passwd",
    "/EURUSD",
    "EUR\0USD",
    "\u{202e}DSURUE💥",
    "-1",
    " ",
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, number: i32, wire_type: u64) {
    varint(out, (u64::try_from(number).unwrap() << 3) | wire_type);
}

fn length_delimited(out: &mut Vec<u8>, number: i32, bytes: &[u8]) {
    tag(out, number, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Every message type of the descriptor set by its full name (`.ktrdr.data.v1.ReadBarsRequest`).
fn message_types(set: &FileDescriptorSet) -> HashMap<String, DescriptorProto> {
    fn add(prefix: &str, m: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", m.name());
        for nested in &m.nested_type {
            add(&name, nested, out);
        }
        out.insert(name, m.clone());
    }
    let mut out = HashMap::new();
    for file in &set.file {
        let prefix = format!(".{}", file.package());
        for m in &file.message_type {
            add(&prefix, m, &mut out);
        }
    }
    out
}

/// A message of `type_name` with every field set per `fill`.
fn encode(
    types: &HashMap<String, DescriptorProto>,
    type_name: &str,
    fill: Fill,
    depth: usize,
) -> Vec<u8> {
    let mut out = vec![];
    let Some(message) = types.get(type_name) else {
        return out;
    };
    for (i, field) in message.field.iter().enumerate() {
        let n = field.number();
        let text = match fill {
            Fill::HostileStrings => HOSTILE[i % HOSTILE.len()].to_owned(),
            Fill::HugeStrings => "A".repeat(100_000),
            Fill::Negative | Fill::Huge => String::new(),
        };
        let (int, float): (u64, f64) = match fill {
            Fill::Negative => (-1i64 as u64, f64::NAN),
            Fill::Huge => (i64::MAX as u64, f64::MAX),
            Fill::HostileStrings | Fill::HugeStrings => (0, 0.0),
        };
        match field.r#type() {
            Type::String | Type::Bytes => length_delimited(&mut out, n, text.as_bytes()),
            Type::Message | Type::Group => {
                if depth + 1 < depth_of(fill) {
                    let inner = encode(types, field.type_name(), fill, depth + 1);
                    length_delimited(&mut out, n, &inner);
                }
            }
            Type::Enum => {
                tag(&mut out, n, 0);
                varint(&mut out, if matches!(fill, Fill::Huge) { 999 } else { int });
            }
            Type::Bool => {
                tag(&mut out, n, 0);
                varint(&mut out, 1);
            }
            Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 => {
                tag(&mut out, n, 0);
                varint(&mut out, int);
            }
            Type::Sint32 | Type::Sint64 => {
                tag(&mut out, n, 0);
                let v = int as i64;
                varint(&mut out, ((v << 1) ^ (v >> 63)) as u64);
            }
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                tag(&mut out, n, 1);
                let bits = if field.r#type() == Type::Double {
                    float.to_bits()
                } else {
                    int
                };
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                tag(&mut out, n, 5);
                let bits = if field.r#type() == Type::Float {
                    (float as f32).to_bits()
                } else {
                    int as u32
                };
                out.extend_from_slice(&bits.to_le_bytes());
            }
        }
    }
    out
}

/// One gRPC method: its path and the full name of its request type.
struct Method {
    path: String,
    input: String,
}

/// The methods of `service` (`ktrdr.data.v1.DataService`) in the descriptor set.
fn methods(set: &FileDescriptorSet, service: &str) -> Vec<Method> {
    let mut out = vec![];
    for file in &set.file {
        for s in &file.service {
            if format!("{}.{}", file.package(), s.name()) != service {
                continue;
            }
            for m in &s.method {
                out.push(Method {
                    path: format!("/{service}/{}", m.name()),
                    input: m.input_type().to_owned(),
                });
            }
        }
    }
    out
}

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(ktrdr_proto::FILE_DESCRIPTOR_SET).unwrap()
}

#[test]
fn every_service_in_the_contracts_is_served_by_a_binary_the_sweep_starts() {
    let set = descriptor_set();
    let declared: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.package().starts_with("ktrdr."))
        .flat_map(|f| {
            f.service
                .iter()
                .map(move |s| format!("{}.{}", f.package(), s.name()))
        })
        .collect();
    let served: BTreeSet<String> = SERVICE_BINARIES
        .iter()
        .flat_map(|(_, services)| services.iter().map(|s| (*s).to_owned()))
        .collect();
    assert_eq!(declared, served);
    for service in &declared {
        assert!(
            !methods(&set, service).is_empty(),
            "{service} has no methods"
        );
    }
}

#[tokio::test]
async fn every_method_of_every_service_answers_bad_input_in_time_without_unknown_internal_or_a_panic()
 {
    let stack = Stack::start(InProcess::NONE, 1, FAST_PACING).await;
    let set = descriptor_set();
    let types = message_types(&set);
    let process = |binary: &str| -> &ServiceProcess {
        match binary {
            "ktrdr-gateway" => &stack.gateway,
            "ktrdr-data" => stack.data.as_ref().unwrap(),
            "ktrdr-ib-host" => stack.ib_host.as_ref().unwrap(),
            "ktrdr-training-host" => &stack.training_hosts[0],
            "ktrdr-ib-sim" => &stack.sim,
            other => panic!("no process for {other}"),
        }
    };
    let mut failures = vec![];
    let mut calls = 0;
    let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
    for (binary, services) in SERVICE_BINARIES {
        let channel = process(binary).channel().await;
        for service in *services {
            for method in methods(&set, service) {
                let mut inputs: Vec<(String, Vec<u8>)> = vec![("empty".into(), vec![])];
                for fill in FILLS {
                    inputs.push((format!("{fill:?}"), encode(&types, &method.input, fill, 0)));
                }
                for (i, bytes) in NOT_PROTOBUF.iter().enumerate() {
                    inputs.push((format!("not protobuf #{i}"), bytes.to_vec()));
                }
                for (what, bytes) in inputs {
                    calls += 1;
                    let answer = tokio::time::timeout(
                        DEADLINE + Duration::from_secs(5),
                        raw::call(channel.clone(), &method.path, vec![bytes], DEADLINE),
                    )
                    .await;
                    let (code, transport) = match &answer {
                        Err(_) => (Some(Code::DeadlineExceeded), false),
                        Ok(Ok(_)) => (None, false),
                        Ok(Err(status)) => (
                            Some(status.code()),
                            status.message().contains("protocol error"),
                        ),
                    };
                    *codes.entry(format!("{code:?}")).or_default() += 1;
                    // A transport failure (the connection torn down, e.g. by oversized headers)
                    // or a cancel nobody asked for is no answer either.
                    if transport
                        || matches!(
                            code,
                            Some(
                                Code::Unknown
                                    | Code::Internal
                                    | Code::DeadlineExceeded
                                    | Code::Cancelled
                            )
                        )
                    {
                        failures.push(format!("{binary} {} ({what}): {answer:?}", method.path));
                    }
                }
            }
        }
    }
    let mut panics = vec![];
    for (binary, _) in SERVICE_BINARIES {
        let logs = process(binary).logs();
        for line in logs.lines().filter(|l| l.contains("panicked")) {
            panics.push(format!("{binary}: {line}"));
        }
    }
    eprintln!("{calls} calls answered: {codes:?}");
    assert!(calls > 300, "only {calls} calls");
    assert!(
        failures.is_empty() && panics.is_empty(),
        "{} of {calls} calls failed:\n{}\npanics:\n{}",
        failures.len(),
        failures.join("\n"),
        panics.join("\n")
    );
}
