//! `ktrdr.ib.v1.IbHostService`: the gRPC face of this service.
//!
//! Methods whose issue has not landed yet answer `UNIMPLEMENTED` with a message naming the
//! method and the binary that answered.

use ktrdr_common::error::unimplemented_status;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::ib::v1::{self as pb, ib_host_service_server::IbHostService};
use tonic::{Request, Response, Status};

const SERVICE: &str = "ktrdr.ib.v1.IbHostService";

/// Implements `IbHostService`; `server` names the binary in error messages.
#[derive(Debug, Clone)]
pub struct IbHostApi {
    server: &'static str,
}

impl IbHostApi {
    pub fn new(server: &'static str) -> Self {
        Self { server }
    }

    fn unimplemented<T>(&self, method: &str) -> Result<T, Status> {
        Err(unimplemented_status(SERVICE, method, self.server))
    }
}

#[tonic::async_trait]
impl IbHostService for IbHostApi {
    type FetchBarsStream = ResponseStream<pb::FetchBarsResponse>;

    async fn fetch_bars(
        &self,
        _request: Request<pb::FetchBarsRequest>,
    ) -> Result<Response<Self::FetchBarsStream>, Status> {
        self.unimplemented("FetchBars")
    }

    async fn get_head_timestamp(
        &self,
        _request: Request<pb::GetHeadTimestampRequest>,
    ) -> Result<Response<pb::GetHeadTimestampResponse>, Status> {
        self.unimplemented("GetHeadTimestamp")
    }

    async fn lookup_contract(
        &self,
        _request: Request<pb::LookupContractRequest>,
    ) -> Result<Response<pb::LookupContractResponse>, Status> {
        self.unimplemented("LookupContract")
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.unimplemented("GetStatus")
    }
}
