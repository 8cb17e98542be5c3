//! The server's background work, beside the HTTP server: flushing key usage, running scheduled
//! jobs (reservation expiry), purging idempotency records, and delivering webhooks.
//!
//! Every worker stops at shutdown the same way: it is told to stop, takes no new work, and the
//! server waits for what it is doing to finish (API.md §10: "let workers finish their current
//! job") — a webhook delivery in flight is answered (or times out) and recorded, never cut off
//! between the request and its record. A worker still busy after [`STOP_GRACE`] is abandoned;
//! its job's lease runs out and another process takes it over.
//!
//! Webhook deliveries (API.md §7) run on [`WEBHOOK_LANES`] lanes, each claiming and attempting
//! one delivery at a time, so one slow receiver (up to the 10 s delivery timeout) never holds the
//! others back. The job queue hands each delivery to one claim at a time, across lanes and across
//! processes. Idle lanes are woken every [`WEBHOOK_POLL`] — one claim per tick per process,
//! whatever the number of lanes — and a lane that found work claims again at once and wakes
//! another, so a backlog is drained by every lane. A delivery's first attempt therefore starts
//! within about [`WEBHOOK_POLL`] of its event's commit, and held deliveries as soon after resume
//! (§7 asks for 2 s), unless every lane of every process is busy. The queue hands out the
//! deliveries of one endpoint one at a time, in the order of their events (`Job::queue`), so a
//! receiver gets its events in order whichever lane or process sends each, while deliveries to
//! different endpoints run side by side.
//!
//! Each lane claims a single delivery, so a claim's lease (`domain::webhooks::DELIVERY_LEASE`,
//! 1 min) only ever has to cover one attempt (at most the 10 s delivery timeout and its record):
//! a delivery is never taken over from a live worker. A worker that died mid-attempt leaves its
//! delivery — and, behind it, its endpoint's queue — until the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use domain::use_cases::ControlPlane;
use domain::DomainError;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How often the `lastUsedAt` of the keys used meanwhile is written: the most it lags (API.md
/// §5.1 allows 60 s).
const KEY_USAGE_FLUSH: Duration = Duration::from_secs(10);
/// How often idempotency records past their 24 h replay window are deleted (expired records are
/// ignored by claims anyway; this keeps the table small).
const IDEMPOTENCY_PURGE: Duration = Duration::from_secs(600);
/// How often the worker claims due jobs (API.md §8): held work goes out within this of resume.
const SCHEDULED_WORK: Duration = Duration::from_secs(2);
/// How many webhook deliveries one process attempts at once.
pub const WEBHOOK_LANES: usize = 4;
/// How often an idle process looks for due webhook deliveries.
pub const WEBHOOK_POLL: Duration = Duration::from_millis(250);
/// How long shutdown waits for the workers: a delivery's timeout, plus time to record it.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The running workers of one server.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(control_plane: &ControlPlane) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let cp = control_plane.clone();
        tasks.push(tokio::spawn(every(
            KEY_USAGE_FLUSH,
            "recorded the last uses of API keys",
            stopped.clone(),
            move || {
                let cp = cp.clone();
                async move { cp.flush_key_usage().await }
            },
        )));
        let cp = control_plane.clone();
        tasks.push(tokio::spawn(every(
            IDEMPOTENCY_PURGE,
            "deleted expired idempotency records",
            stopped.clone(),
            move || {
                let cp = cp.clone();
                async move {
                    cp.purge_idempotency_records()
                        .await
                        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                }
            },
        )));
        let cp = control_plane.clone();
        tasks.push(tokio::spawn(every(
            SCHEDULED_WORK,
            "ran scheduled jobs",
            stopped.clone(),
            move || {
                let cp = cp.clone();
                async move { cp.run_scheduled_work().await }
            },
        )));

        let wake = Arc::new(Notify::new());
        tasks.push(tokio::spawn(poll_ticks(wake.clone(), stopped.clone())));
        for _ in 0..WEBHOOK_LANES {
            tasks.push(tokio::spawn(delivery_lane(
                control_plane.clone(),
                wake.clone(),
                stopped.clone(),
            )));
        }
        Workers { stop, tasks }
    }

    /// Tells every worker to stop and waits (at most [`STOP_GRACE`]) for what they are doing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut tasks = self.tasks;
        let all = join_all(&mut tasks);
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            tracing::warn!("background work still running at shutdown was abandoned");
            for task in &tasks {
                task.abort();
            }
        }
    }
}

/// Waits for every task, in turn (they all stop on the same signal).
async fn join_all(tasks: &mut [JoinHandle<()>]) {
    for task in tasks.iter_mut() {
        let _ = task.await;
    }
}

/// Resolves once the server is stopping (at once if it already is).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is gone too.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// `job` every `period`, until the server stops. A failure is logged and the job runs again at
/// the next tick, so an outage of the store only delays it. A job that has started is finished.
async fn every<F, Fut>(
    period: Duration,
    what: &'static str,
    mut stopped: watch::Receiver<bool>,
    job: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, DomainError>>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stopping(&mut stopped) => return,
            _ = ticks.tick() => {}
        }
        match job().await {
            Ok(0) => {}
            Ok(done) => tracing::info!(done, "{what}"),
            Err(error) => tracing::warn!(%error, "{what} failed; will retry"),
        }
    }
}

/// Wakes one idle delivery lane every [`WEBHOOK_POLL`].
async fn poll_ticks(wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(WEBHOOK_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stopping(&mut stopped) => return,
            _ = ticks.tick() => wake.notify_one(),
        }
    }
}

/// One delivery at a time: claim one due delivery and attempt it; after one, at once again (and
/// wake a sibling: there may be more); when there was none, sleep until woken.
async fn delivery_lane(
    control_plane: ControlPlane,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            () = stopping(&mut stopped) => return,
            () = wake.notified() => {}
        }
        loop {
            if *stopped.borrow() {
                return;
            }
            // Not raced with the stop signal: an attempt that started is finished and recorded.
            match control_plane.deliver_webhooks(1).await {
                Ok(0) => break,
                Ok(_) => wake.notify_one(),
                Err(error) => {
                    tracing::warn!(%error, "delivering webhooks failed; will retry");
                    break;
                }
            }
        }
    }
}
