//! The subscriber thread: one connection in pub/sub mode, whose messages become
//! [`crate::BusEvent::Message`]s.
//!
//! A connection in pub/sub mode can only (un)subscribe and read, and the blocking API reads
//! with a timeout, so (un)subscribe requests come from the command thread through a channel,
//! and the command thread publishes on this connection's private wake channel to cut the
//! read short: a subscription is in force before the next op runs, without polling.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::emit::Emitter;
use crate::worker::{Msg, CONNECT_TIMEOUT, IO_TIMEOUT};

/// How long a read waits before the thread looks for requests that came without a wake
/// (a disconnect, the stop).
const POLL: Duration = Duration::from_millis(200);

/// An answer to the command thread: done, or why not.
pub(crate) type Ack = mpsc::Sender<Result<(), String>>;

/// What the command thread asks of the subscriber.
pub(crate) enum Req {
    /// Open a new connection for session `session` (dropping any other).
    Connect { session: u64, ack: Ack },
    /// Subscribe (`true`) or unsubscribe each channel, in order.
    Change {
        session: u64,
        changes: Vec<(bool, String)>,
        ack: Ack,
    },
    /// Drop the connection: the session is over.
    Disconnect,
    /// End the thread.
    Stop,
}

/// What the thread needs.
pub(crate) struct Subscriber {
    pub(crate) client: redis::Client,
    /// The private channel the command thread publishes on to wake this thread.
    pub(crate) wake: String,
    pub(crate) reqs: mpsc::Receiver<Req>,
    /// Tells the command thread the connection broke.
    pub(crate) broken: mpsc::Sender<Msg>,
    pub(crate) emit: Arc<Emitter>,
}

/// What ended a session.
enum After {
    /// Wait for the next request.
    Idle,
    /// Handle this request next.
    Next(Req),
    /// End the thread.
    Stop,
}

impl Subscriber {
    /// Runs until stopped.
    pub(crate) fn run(self) {
        let mut next = None;
        loop {
            let req = match next.take() {
                Some(req) => req,
                None => match self.reqs.recv() {
                    Ok(req) => req,
                    Err(_) => return,
                },
            };
            match req {
                Req::Connect { session, ack } => match self.session(session, &ack) {
                    After::Idle => {}
                    After::Next(req) => next = Some(req),
                    After::Stop => return,
                },
                Req::Change { ack, .. } => {
                    let _ = ack.send(Err("the subscriber is not connected".into()));
                }
                Req::Disconnect => {}
                Req::Stop => return,
            }
        }
    }

    /// One connection's life: connect, subscribe to the wake channel, then read messages
    /// and serve requests until it breaks or another request ends it.
    fn session(&self, session: u64, ack: &Ack) -> After {
        let mut con = match self.connect() {
            Ok(con) => con,
            Err(e) => {
                let _ = ack.send(Err(e.to_string()));
                return After::Idle;
            }
        };
        let mut pubsub = con.as_pubsub();
        if let Err(e) = pubsub.subscribe(&self.wake) {
            let _ = ack.send(Err(e.to_string()));
            return After::Idle;
        }
        if let Err(e) = pubsub.set_read_timeout(Some(POLL)) {
            let _ = ack.send(Err(e.to_string()));
            return After::Idle;
        }
        let _ = ack.send(Ok(()));
        let mut channels = HashSet::new();
        loop {
            loop {
                match self.reqs.try_recv() {
                    Ok(Req::Change {
                        session: theirs,
                        changes,
                        ack,
                    }) => {
                        if theirs != session {
                            let _ = ack.send(Err("an older session's request".into()));
                            continue;
                        }
                        let done = change(&mut pubsub, &mut channels, changes);
                        let failed = done.is_err();
                        let _ = ack.send(done);
                        if failed {
                            return After::Idle;
                        }
                    }
                    Ok(Req::Disconnect) => return After::Idle,
                    Ok(Req::Stop) | Err(mpsc::TryRecvError::Disconnected) => return After::Stop,
                    Ok(req @ Req::Connect { .. }) => return After::Next(req),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    let channel = msg.get_channel_name();
                    // Messages read before an unsubscribe took effect are not wanted, and
                    // the wake channel's only job is to end the read.
                    if channels.contains(channel) {
                        let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                        self.emit.message(session, channel.to_owned(), payload);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    let _ = self.broken.send(Msg::SubBroken {
                        session,
                        why: e.to_string(),
                    });
                    return After::Idle;
                }
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }
}

/// Applies (un)subscriptions in order, one command each: a command naming several channels
/// gets one answer per channel, and the blocking API returns on the first, so the next
/// command would take a leftover answer for its own. The read timeout is the long one
/// meanwhile: a slow answer is not a broken connection.
fn change(
    pubsub: &mut redis::PubSub<'_>,
    channels: &mut HashSet<String>,
    changes: Vec<(bool, String)>,
) -> Result<(), String> {
    pubsub
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    for (subscribe, channel) in changes {
        if subscribe {
            pubsub.subscribe(&channel).map_err(|e| e.to_string())?;
            channels.insert(channel);
        } else {
            pubsub.unsubscribe(&channel).map_err(|e| e.to_string())?;
            channels.remove(&channel);
        }
    }
    pubsub
        .set_read_timeout(Some(POLL))
        .map_err(|e| e.to_string())
}
