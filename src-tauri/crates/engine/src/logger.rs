//! The logging loop of `dsmon serve` and the desktop app: one tick at every wall-clock multiple of
//! the log interval, rows kept in memory while the database does not take them, and the wall
//! clock's surprises (stepped back, jumped forward, a suspended process, ticks running late)
//! handled. The wall clock is the collector's [`Clock`](dsmon_core::Clock), so tests step it; the
//! monotonic clock is tokio's.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use dsmon_core::{tick_at_or_before, Row};
use dsmon_store::SharedSamples;

use crate::collector::{with_store, Collector};
use crate::events::{
    HeldWritten, LoggerSkip, RowsDropped, RowsHandedOver, TickFailed, TickHeld, WriteFailed,
};

/// Late ticks caught up at most; further behind, the logger skips to the newest tick.
pub const MAX_CATCH_UP: i64 = 60;

/// Rows kept in memory at most while the database does not take writes (with 100 nodes and a
/// 10-minute interval, about a week).
pub const MAX_HELD_ROWS: usize = 100_000;
/// How often a write of held rows is tried again.
const HELD_RETRY: Duration = Duration::from_secs(5);

impl Collector {
    /// Logs the newest tick at once if it is missing (after a restart), then one tick at every
    /// wall-clock multiple of the log interval, until `shutdown` turns true. A tick in progress
    /// (its poll and its write) always finishes.
    ///
    /// When a write fails (a full disk, a read-only or locked database) the rows are kept in memory
    /// ([`MAX_HELD_ROWS`] at most), the write is tried again every few seconds, and they are
    /// written, oldest first, as soon as the database takes them: no tick is lost.
    pub async fn run_logger(&self, store: SharedSamples, shutdown: watch::Receiver<bool>) {
        self.log_until(store, shutdown, false).await
    }

    /// The same for the leader of several instances on one PostgreSQL, stopped when it loses the
    /// lock: rows it could not write are then handed over (whichever instance leads next
    /// backfills those ticks from the agents), not lost.
    pub async fn run_logger_while_leading(
        &self,
        store: SharedSamples,
        shutdown: watch::Receiver<bool>,
    ) {
        self.log_until(store, shutdown, true).await
    }

    async fn log_until(
        &self,
        store: SharedSamples,
        mut shutdown: watch::Receiver<bool>,
        handover: bool,
    ) {
        let interval = self.settings.log_interval.as_secs().max(1);
        let mut next = tick_at_or_before(self.clock.unix_secs(), interval);
        let mut held = Held::default();
        // The wall clock and the monotonic clock at the last tick's end: when the wall clock moved
        // further than the monotonic one, it was stepped (or the machine slept).
        let mut anchor = (self.clock.unix_secs_f64(), Instant::now());
        loop {
            match self.wait_for(next, &store, &mut held, &mut shutdown).await {
                Wait::Stop => {
                    held.flush(&store).await;
                    held.report_lost(handover);
                    return;
                }
                Wait::Due => {}
                Wait::SteppedBack(newest) => next = newest,
            }
            self.log_one(next, &store, &mut held).await;
            let now = self.clock.unix_secs_f64();
            let stepped = now - anchor.0 - anchor.1.elapsed().as_secs_f64() > interval as f64;
            anchor = (now, Instant::now());
            next = next_tick(next, now as i64, interval, stepped);
        }
    }

    /// Waits for tick `next` by the wall clock, re-reading it at least every few seconds so that a
    /// clock step (NTP, suspend) is noticed, and retrying held rows meanwhile.
    async fn wait_for(
        &self,
        next: i64,
        store: &SharedSamples,
        held: &mut Held,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Wait {
        let interval = self.settings.log_interval.as_secs().max(1) as i64;
        loop {
            if *shutdown.borrow() {
                return Wait::Stop;
            }
            let now = self.clock.now();
            let target = Duration::from_secs(next.max(0) as u64);
            if now >= target {
                return Wait::Due;
            }
            // A clock stepped back by more than an interval: continue with the newest tick (ticks
            // already logged are not polled again) instead of waiting for the old one.
            let newest = tick_at_or_before(now.as_secs() as i64, interval as u64);
            if newest + interval < next {
                LoggerSkip::ClockBack {
                    secs: next - interval - newest,
                }
                .emit();
                return Wait::SteppedBack(newest);
            }
            let wait = (target - now).min(HELD_RETRY);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            held.flush(store).await;
        }
    }

    /// Polls and writes (or holds) one tick.
    async fn log_one(&self, ts: i64, store: &SharedSamples, held: &mut Held) {
        let start = Instant::now();
        match self.poll_tick(store, ts).await {
            Ok((rows, mut report)) => {
                held.push(rows);
                if let Some(written) = held.flush(store).await {
                    report.written = written;
                    report.elapsed = start.elapsed();
                    report.emit();
                } else {
                    TickHeld {
                        ts,
                        held: held.rows.len(),
                    }
                    .emit();
                }
            }
            Err(e) => TickFailed { ts, error: &e }.emit(),
        }
    }
}

enum Wait {
    Stop,
    Due,
    /// The clock went back: continue with this tick.
    SteppedBack(i64),
}

/// The tick after `done`, given the wall clock `now` once it is logged and whether the clock was
/// `stepped` meanwhile: normally the following one; the ones that passed while ticks ran late are
/// caught up (the agents still have those intervals); after a jump or a suspension, or too far
/// behind, the newest.
fn next_tick(done: i64, now: i64, interval: u64, stepped: bool) -> i64 {
    let newest = tick_at_or_before(now, interval);
    let following = done + interval as i64;
    let behind = (newest - following) / interval as i64;
    if newest <= following {
        following
    } else if stepped || behind >= MAX_CATCH_UP {
        LoggerSkip::Jumped { skipped: behind }.emit();
        newest
    } else {
        LoggerSkip::CatchingUp { behind }.emit();
        following
    }
}

/// Rows whose write failed, oldest first.
#[derive(Default)]
struct Held {
    rows: Vec<Row>,
    /// Rows given up because the backlog was full.
    dropped: usize,
    /// The write error was logged (once per episode).
    failing: bool,
}

impl Held {
    fn push(&mut self, rows: Vec<Row>) {
        self.rows.extend(rows);
        if self.rows.len() > MAX_HELD_ROWS {
            let over = self.rows.len() - MAX_HELD_ROWS;
            self.rows.drain(..over);
            self.dropped += over;
            RowsDropped {
                rows: over,
                kept: MAX_HELD_ROWS,
                stopping: false,
            }
            .emit();
        }
    }

    /// Writes every held row; the number written (new rows), or `None` while the database does
    /// not take them.
    async fn flush(&mut self, store: &SharedSamples) -> Option<usize> {
        if self.rows.is_empty() {
            return Some(0);
        }
        let attempt = self.rows.clone();
        let ticks: HashSet<i64> = attempt.iter().map(|r| r.ts).collect();
        match with_store(store, move |s| s.insert_rows(&attempt)).await {
            Ok(written) => {
                if self.failing {
                    HeldWritten {
                        rows: self.rows.len(),
                        ticks: ticks.len(),
                    }
                    .emit();
                }
                self.rows.clear();
                self.failing = false;
                Some(written)
            }
            Err(e) => {
                WriteFailed {
                    error: &e,
                    held: self.rows.len(),
                    first: !self.failing,
                }
                .emit();
                self.failing = true;
                None
            }
        }
    }

    fn report_lost(&self, handover: bool) {
        if handover && !self.rows.is_empty() {
            RowsHandedOver {
                rows: self.rows.len(),
            }
            .emit();
        }
        let lost = if handover {
            self.dropped
        } else {
            self.rows.len() + self.dropped
        };
        if lost > 0 {
            RowsDropped {
                rows: lost,
                kept: 0,
                stopping: true,
            }
            .emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_follows_catches_up_or_skips() {
        // On time: the following tick.
        assert_eq!(next_tick(600, 1190, 600, false), 1200);
        // Late by two ticks: catch up, one at a time.
        assert_eq!(next_tick(600, 2400, 600, false), 1200);
        // The clock jumped: the newest.
        assert_eq!(next_tick(600, 2400, 600, true), 2400);
        // Too far behind: the newest.
        assert_eq!(
            next_tick(0, 600 * (MAX_CATCH_UP + 2), 600, false),
            600 * (MAX_CATCH_UP + 2)
        );
    }
}
