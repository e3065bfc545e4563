//! Calls with bytes of our choosing on the wire: any method by its path, any request bytes
//! (malformed protobuf included), the response messages undecoded. The tests of hostile input
//! use it; typed clients cannot send what does not encode.

use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Sends and receives message bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Calls `path` (`/package.Service/Method`) with `messages` as the request stream (one for a
/// unary or server-streaming method) and the gRPC deadline `deadline`; the number of response
/// messages, or the status the call ended with.
pub async fn call(
    channel: Channel,
    path: &str,
    messages: Vec<Vec<u8>>,
    deadline: Duration,
) -> Result<usize, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    let path = PathAndQuery::try_from(path)
        .map_err(|e| Status::invalid_argument(format!("bad path {path}: {e}")))?;
    let mut request = Request::new(tokio_stream::iter(messages));
    request.set_timeout(deadline);
    let mut stream = grpc.streaming(request, path, RawCodec).await?.into_inner();
    let mut n = 0;
    while stream.message().await?.is_some() {
        n += 1;
    }
    Ok(n)
}
