//! Receiving a snapshot from the leader: the peer body streams into a
//! temporary file in the snapshot directory (fsynced), then Raft installs
//! it from there. Memory use is one chunk of the body, whatever the
//! snapshot's size.
//!
//! The body is a big-endian `u32` header length, the encoded
//! [`SnapshotHeader`], then the snapshot bytes (see [`crate::wire`]).

use std::fmt::Display;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use openraft::errors::RaftError;

use super::ControlPlane;
use crate::codec;
use crate::error::Error;
use crate::store::SnapshotSink;
use crate::types::{NodeName, Snapshot, TypeConfig};
use crate::wire::{MAX_SNAPSHOT_HEADER, SnapshotHeader};

fn storage(e: std::io::Error) -> Error {
    Error::Storage(format!("receiving a snapshot: {e}"))
}

impl ControlPlane {
    /// Installs a snapshot streamed by the leader; `body` is the peer
    /// request body, the result the encoded answer.
    pub async fn serve_snapshot<S, E>(
        &self,
        body: S,
        from: Option<NodeName>,
    ) -> Result<Vec<u8>, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let mut body = body;
        let (header, mut sink) = self.read_snapshot_header(&mut body).await?;
        super::peer::check_sender(from, &header.vote)?;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| Error::BadRequest(format!("snapshot stream broke: {e}")))?;
            if header
                .len
                .is_some_and(|len| sink.written() + chunk.len() as u64 > len)
            {
                return Err(Error::BadRequest(
                    "snapshot stream is longer than its header says".into(),
                ));
            }
            sink.write(&chunk).await.map_err(storage)?;
        }
        if let Some(len) = header.len
            && sink.written() != len
        {
            return Err(Error::BadRequest(format!(
                "snapshot stream ended after {} of {len} bytes",
                sink.written()
            )));
        }
        let data = sink.finish().await.map_err(storage)?;
        tracing::info!(
            bytes = data.len(),
            last_log_index = header.meta.last_log_id.map(|l| l.index),
            "installing snapshot from leader"
        );
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: data,
        };
        let reply: Result<_, RaftError<TypeConfig>> = self
            .inner
            .raft
            .install_full_snapshot(header.vote, snapshot)
            .await
            .map_err(RaftError::Fatal);
        Ok(codec::encode(&reply)?)
    }

    /// Reads the header off the front of the body and opens the file the
    /// rest goes to, already holding whatever followed the header.
    async fn read_snapshot_header<S, E>(
        &self,
        body: &mut S,
    ) -> Result<(SnapshotHeader, SnapshotSink), Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let mut buf = BytesMut::new();
        let head_len = loop {
            if buf.len() >= 4 {
                let n = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if n > MAX_SNAPSHOT_HEADER {
                    return Err(Error::BadRequest("snapshot header too large".into()));
                }
                if buf.len() >= 4 + n {
                    break n;
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(Error::BadRequest(format!("snapshot stream broke: {e}")));
                }
                None => return Err(Error::BadRequest("snapshot header truncated".into())),
            }
        };
        buf.advance(4);
        let header: SnapshotHeader = codec::decode(&buf.split_to(head_len))?;
        let mut sink = SnapshotSink::create(&self.inner.snapshot_dir).map_err(storage)?;
        if !buf.is_empty() {
            sink.write(&buf).await.map_err(storage)?;
        }
        Ok((header, sink))
    }
}
