//! Watching: logs, stats and events as streams.

use berth_api::v1::{self as pb, system_client::SystemClient};

use crate::error::Result;
use crate::stream::{self, Stream};
use crate::Client;

impl Client {
    /// A container's logs; with `req.follow` the stream goes on as the
    /// container writes.
    pub async fn logs(&self, req: pb::LogsRequest) -> Result<Stream<pb::LogEntry>> {
        let s = self.containers().await?.logs(req).await?.into_inner();
        Ok(stream::typed(s, |e| e))
    }

    /// A container's resource use: one sample, or one a second with
    /// `stream`.
    pub async fn stats(&self, id: &str, stream: bool) -> Result<Stream<pb::StatsSample>> {
        let req = pb::StatsRequest {
            id: id.to_string(),
            stream,
        };
        let s = self.containers().await?.stats(req).await?.into_inner();
        Ok(stream::typed(s, |e| e))
    }

    /// What happens to images, containers, volumes and networks, with
    /// Docker's filters (`type`, `event`, `container`, `label`, …).
    pub async fn events(&self, req: pb::EventsRequest) -> Result<Stream<pb::Event>> {
        let s = SystemClient::new(self.channel().await?)
            .events(req)
            .await?
            .into_inner();
        Ok(stream::typed(s, |e| e))
    }
}
