//! `ktrdr.ib.v1.IbHostService`: the gRPC face of [`IbHost`].

use std::sync::Arc;

use ktrdr_common::server::ResponseStream;
use ktrdr_proto::ib::v1::{self as pb, ib_host_service_server::IbHostService};
use tonic::{Request, Response, Status};

use crate::host::IbHost;

#[derive(Clone)]
pub struct IbHostApi {
    host: Arc<IbHost>,
}

impl IbHostApi {
    pub fn new(host: Arc<IbHost>) -> Self {
        Self { host }
    }
}

#[tonic::async_trait]
impl IbHostService for IbHostApi {
    type FetchBarsStream = ResponseStream<pb::FetchBarsResponse>;

    async fn fetch_bars(
        &self,
        request: Request<pb::FetchBarsRequest>,
    ) -> Result<Response<Self::FetchBarsStream>, Status> {
        Ok(Response::new(
            self.host.fetch_bars(request.into_inner()).await?,
        ))
    }

    async fn get_head_timestamp(
        &self,
        request: Request<pb::GetHeadTimestampRequest>,
    ) -> Result<Response<pb::GetHeadTimestampResponse>, Status> {
        Ok(Response::new(
            self.host.head_timestamp(request.into_inner()).await?,
        ))
    }

    async fn lookup_contract(
        &self,
        request: Request<pb::LookupContractRequest>,
    ) -> Result<Response<pb::LookupContractResponse>, Status> {
        Ok(Response::new(
            self.host.lookup_contract(request.into_inner()).await?,
        ))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(self.host.status()))
    }
}
