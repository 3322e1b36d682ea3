//! Sessions seen valid lately, so that a signed-in caller keeps the live view while the database
//! cannot be reached (PostgreSQL restarting, its connection cut). Only sessions that the database
//! confirmed within [`GRACE`] count, and only while the database answers "unavailable"; any
//! other answer (ended, revoked, unknown) is the database's word and replaces what is kept here.
//! What else a request needs from the database still fails with "unavailable" (a 503).

use std::collections::HashMap;
use std::sync::Mutex;

use dsmon_core::Caller;

/// How long after the database last confirmed a session it still counts while the database
/// is unreachable.
pub const GRACE: i64 = 15 * 60;
/// At most this many sessions are kept (one entry each: its hash, the caller, when confirmed).
const MAX: usize = 10_000;

#[derive(Default)]
pub(crate) struct Recent {
    map: Mutex<HashMap<String, (Caller, i64)>>,
}

impl Recent {
    /// What the database said of session `hash` at `t`: kept when valid, forgotten otherwise.
    pub(crate) fn confirmed(&self, hash: &str, caller: Option<&Caller>, t: i64) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        match caller {
            None => {
                map.remove(hash);
            }
            Some(c) => {
                if map.len() >= MAX && !map.contains_key(hash) {
                    map.retain(|_, (_, at)| t - *at < GRACE);
                    if map.len() >= MAX {
                        return;
                    }
                }
                map.insert(hash.to_string(), (c.clone(), t));
            }
        }
    }

    /// The caller of session `hash` if the database confirmed it within [`GRACE`] of `t`.
    pub(crate) fn get(&self, hash: &str, t: i64) -> Option<Caller> {
        let map = self.map.lock().ok()?;
        map.get(hash)
            .filter(|(_, at)| t - *at < GRACE)
            .map(|(c, _)| c.clone())
    }

    /// Forgets every session of `email` (signed out everywhere, blocked, role changed).
    pub(crate) fn forget(&self, email: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, (c, _)| c.email != email);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmon_core::Role;

    fn alice() -> Caller {
        Caller {
            email: "alice@example.com".into(),
            name: None,
            role: Role::Admin,
        }
    }

    #[test]
    fn a_session_counts_within_the_grace_only_and_until_the_database_says_otherwise() {
        let r = Recent::default();
        assert_eq!(r.get("h", 100), None);
        r.confirmed("h", Some(&alice()), 100);
        assert_eq!(r.get("h", 100 + GRACE - 1), Some(alice()));
        assert_eq!(r.get("h", 100 + GRACE), None);
        r.confirmed("h", None, 200);
        assert_eq!(r.get("h", 201), None, "ended by the database: gone");
        r.confirmed("h", Some(&alice()), 300);
        r.forget("alice@example.com");
        assert_eq!(r.get("h", 301), None);
    }
}
