//! Caps on live streams: a stream holds a connection and a task for as long as the client keeps
//! it open, so one session (or everyone together) may hold only so many; beyond, a clear 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::Digest;

use dsmon_app::{AppError, ErrorKind};

/// Live streams one session may hold open at once (a few browser tabs and the desktop app).
pub const PER_SESSION: usize = 8;
/// Live streams open at once in total.
pub const TOTAL: usize = 2000;

/// Open streams by session (keyed by a hash of the session, never the session itself).
pub struct StreamLimits {
    per_session: usize,
    total: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// A stream's place; given back when dropped.
pub struct Slot {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamLimits {
    pub fn new(per_session: usize, total: usize) -> Self {
        Self {
            per_session,
            total,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for one more stream of `session`, or a 429-kind refusal. Without a session (no
    /// sign-in configured: everyone is the one local user) only the total cap applies.
    pub fn open(&self, session: Option<&str>) -> Result<Slot, AppError> {
        let key: String = match session {
            Some(s) => sha2::Sha256::digest(s.as_bytes())
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect(),
            None => "local".into(),
        };
        let per_session = if session.is_some() {
            self.per_session
        } else {
            self.total
        };
        let mut open = self
            .open
            .lock()
            .map_err(|_| AppError::internal("stream table lock poisoned"))?;
        let total: usize = open.values().sum();
        let mine = open.get(&key).copied().unwrap_or(0);
        if mine >= per_session {
            return Err(AppError::new(
                ErrorKind::TooMany,
                format!(
                    "this session already has {mine} live streams open (at most {}); close one",
                    self.per_session
                ),
            ));
        }
        if total >= self.total {
            tracing::warn!(total, "live streams at their cap: refusing more");
            return Err(AppError::new(
                ErrorKind::TooMany,
                format!("the server has {total} live streams open, its most; try again later"),
            ));
        }
        *open.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot {
            key,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(n) = open.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_session_and_total_caps_and_slots_given_back() {
        let l = StreamLimits::new(2, 3);
        let a1 = l.open(Some("a")).expect("a1");
        let _a2 = l.open(Some("a")).expect("a2");
        assert_eq!(
            l.open(Some("a")).err().map(|e| e.kind),
            Some(ErrorKind::TooMany)
        );
        let _b1 = l.open(Some("b")).expect("b1");
        let e = l.open(Some("c")).err().expect("total reached");
        assert!(e.message.contains("most"), "{e}");
        drop(a1);
        assert!(
            l.open(Some("c")).is_ok(),
            "a closed stream gives its place back"
        );
    }

    #[test]
    fn without_sign_in_only_the_total_counts() {
        let l = StreamLimits::new(2, 3);
        let held: Vec<_> = (0..3).map(|_| l.open(None).expect("local")).collect();
        assert_eq!(l.open(None).err().map(|e| e.kind), Some(ErrorKind::TooMany));
        drop(held);
    }
}
