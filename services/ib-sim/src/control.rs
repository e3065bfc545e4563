//! `ktrdr.ib.v1.IbSimService`: the gRPC face of this service.
//!
//! Methods whose issue has not landed yet answer `UNIMPLEMENTED` with a message naming the
//! method and the binary that answered.

use ktrdr_common::error::unimplemented_status;
use ktrdr_proto::ib::v1::{self as pb, ib_sim_service_server::IbSimService};
use tonic::{Request, Response, Status};

const SERVICE: &str = "ktrdr.ib.v1.IbSimService";

/// Implements `IbSimService`; `server` names the binary in error messages.
#[derive(Debug, Clone)]
pub struct IbSimApi {
    server: &'static str,
}

impl IbSimApi {
    pub fn new(server: &'static str) -> Self {
        Self { server }
    }

    fn unimplemented<T>(&self, method: &str) -> Result<T, Status> {
        Err(unimplemented_status(SERVICE, method, self.server))
    }
}

#[tonic::async_trait]
impl IbSimService for IbSimApi {
    async fn get_sim_status(
        &self,
        _request: Request<pb::GetSimStatusRequest>,
    ) -> Result<Response<pb::GetSimStatusResponse>, Status> {
        self.unimplemented("GetSimStatus")
    }

    async fn set_rules(
        &self,
        _request: Request<pb::SetRulesRequest>,
    ) -> Result<Response<pb::SetRulesResponse>, Status> {
        self.unimplemented("SetRules")
    }

    async fn inject_fault(
        &self,
        _request: Request<pb::InjectFaultRequest>,
    ) -> Result<Response<pb::InjectFaultResponse>, Status> {
        self.unimplemented("InjectFault")
    }

    async fn reset_sim(
        &self,
        _request: Request<pb::ResetSimRequest>,
    ) -> Result<Response<pb::ResetSimResponse>, Status> {
        self.unimplemented("ResetSim")
    }
}
