//! The agent itself: version, ping, info, disk usage, registry login.

use berth_api::v1::{self as pb, system_client::SystemClient};
use tonic::transport::Channel;

use crate::error::Result;
use crate::{credentials, Client};

impl Client {
    async fn system(&self) -> Result<SystemClient<Channel>> {
        Ok(SystemClient::new(self.channel().await?))
    }

    /// The agent's build and API version.
    pub async fn version(&self) -> Result<pb::VersionResponse> {
        Ok(self
            .system()
            .await?
            .version(pb::VersionRequest {})
            .await?
            .into_inner())
    }

    /// Answers when the agent is up.
    pub async fn ping(&self) -> Result<()> {
        self.system().await?.ping(pb::PingRequest {}).await?;
        Ok(())
    }

    /// The engine's counts, storage root, kernel and cgroup version.
    pub async fn info(&self) -> Result<pb::InfoResponse> {
        Ok(self
            .system()
            .await?
            .info(pb::InfoRequest {})
            .await?
            .into_inner())
    }

    /// What images, containers and volumes take on disk.
    pub async fn disk_usage(&self) -> Result<pb::DiskUsageResponse> {
        Ok(self
            .system()
            .await?
            .disk_usage(pb::DiskUsageRequest {})
            .await?
            .into_inner())
    }

    /// Checks credentials against a registry (the agent keeps none) and,
    /// when they are accepted, stores them for later pulls and pushes;
    /// returns the registry's status line and where they were stored.
    pub async fn login(
        &self,
        server: &str,
        user: &str,
        password: &str,
    ) -> Result<(String, std::path::PathBuf)> {
        let req = pb::LoginRequest {
            server: server.to_string(),
            auth: Some(pb::RegistryAuth {
                username: user.to_string(),
                password: password.to_string(),
                ..Default::default()
            }),
        };
        let status = self.system().await?.login(req).await?.into_inner().status;
        let path = credentials::store(server, user, password)?;
        Ok((status, path))
    }

    /// Ports published by containers, as the agent holds them.
    pub async fn published_ports(&self) -> Result<Vec<pb::PublishedPort>> {
        let c = berth_api::v1::ports_client::PortsClient::new(self.channel().await?);
        Ok(c.clone()
            .published(pb::PublishedRequest {})
            .await?
            .into_inner()
            .ports)
    }
}
