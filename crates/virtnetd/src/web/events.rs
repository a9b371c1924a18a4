//! `GET /events`: the daemon's event feed as Server-Sent Events. Lease events come from the
//! [`EventFeed`] the API's `/v1/events` polls (`lease`, the API's JSON `Event`), network
//! lifecycle changes from its broadcast (`lifecycle`); `lost` says some were missed (the page
//! then reloads its data anyway).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::WebState;
use crate::services::{EventFeed, Lifecycle, LifecycleKind};

/// How long one wait on the lease feed lasts before it is renewed (nothing is sent then).
const FEED_WAIT: Duration = Duration::from_secs(300);

/// Where the stream stands.
struct Cursor {
    feed: Arc<EventFeed>,
    lifecycle: tokio::sync::broadcast::Receiver<Lifecycle>,
    after: u64,
}

/// The stream of one client, from now on.
pub(super) async fn stream(
    State(web): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let feed = Arc::clone(&web.app.events);
    let cursor = Cursor {
        lifecycle: feed.lifecycle.subscribe(),
        after: feed.after(None).next,
        feed,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        let batch = next_events(&mut c).await;
        Some((stream::iter(batch.into_iter().map(Ok)), c))
    })
    .flatten();
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The next events to send (empty when a wait ran out).
async fn next_events(c: &mut Cursor) -> Vec<Event> {
    tokio::select! {
        batch = c.feed.wait_after(Some(c.after), FEED_WAIT) => {
            c.after = batch.next;
            let mut out = Vec::new();
            if batch.lost {
                out.push(Event::default().event("lost").data("lease events were lost"));
            }
            out.extend(batch.events.iter().filter_map(|e| {
                Event::default().event("lease").json_data(e).ok()
            }));
            out
        }
        change = c.lifecycle.recv() => match change {
            Ok(l) => vec![lifecycle_event(&l)],
            Err(RecvError::Lagged(n)) => {
                vec![Event::default().event("lost").data(format!("{n} network events were lost"))]
            }
            // The feed lives as long as the daemon; pending forever keeps the select simple.
            Err(RecvError::Closed) => std::future::pending().await,
        },
    }
}

/// A lifecycle change as a `lifecycle` event: `{"network": …, "kind": "started"}`.
fn lifecycle_event(l: &Lifecycle) -> Event {
    let kind = match l.kind {
        LifecycleKind::Defined => "defined",
        LifecycleKind::Undefined => "undefined",
        LifecycleKind::Started => "started",
        LifecycleKind::Stopped => "stopped",
    };
    let data = serde_json::json!({ "network": l.name, "uuid": l.uuid, "kind": kind });
    Event::default().event("lifecycle").data(data.to_string())
}
