//! The session of whoever signed in to the app (local mode: a session of the app's own database;
//! remote mode: the server's bearer session), in memory and kept in the OS keyring (the `keyring`
//! crate: Secret Service on Linux, Keychain on macOS, Credential Manager on Windows) so that it
//! survives a restart. One keyring entry per backend: service `io.github.dsmon`, user
//! `local <database path>` or `remote <server URL>`. Sign-out deletes it; a session the database or
//! server no longer knows is forgotten there too. Without a usable keyring (no Secret Service on
//! the session bus, a locked or refused keyring) a warning is logged once and the session is kept
//! in memory only, as long as the app runs: it is never written to a file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The keyring entries' service name (the app's identifier).
const SERVICE: &str = "io.github.dsmon";

/// How long a keyring call may take (a D-Bus call; longer: it waits for an unlock prompt that
/// nobody answers) before the app goes on without the keyring.
const KEYRING_TIMEOUT: Duration = Duration::from_secs(10);

pub type Session = Arc<SessionCell>;

#[derive(Default)]
pub struct SessionCell {
    token: Mutex<Option<String>>,
    /// The keyring entry's user of the running backend; `None`: nothing to keep (no sign-in).
    account: Mutex<Option<String>>,
    /// Set when the keyring failed once: memory only from then on.
    memory_only: AtomicBool,
    /// Keyring calls one at a time; each write writes the session as it is then, so that the
    /// last change wins whatever order the callers came in.
    keyring: tokio::sync::Mutex<()>,
}

impl SessionCell {
    pub fn new() -> Session {
        Arc::new(Self::default())
    }

    /// The session token, if anyone is signed in.
    pub fn get(&self) -> Option<String> {
        self.token.lock().ok().and_then(|g| g.clone())
    }

    /// Sets (sign-in) or clears (sign-out, a session that ended) the session, in memory at once
    /// and then in the keyring.
    pub async fn set(&self, v: Option<String>) {
        if let Ok(mut g) = self.token.lock() {
            *g = v;
        }
        let Some(account) = self.keeping() else {
            return;
        };
        let _one = self.keyring.lock().await;
        let token = self.get();
        let r = keyring_call(move || {
            let entry = keyring::Entry::new(SERVICE, &account)?;
            match token {
                Some(t) => entry.set_password(&t),
                None => match entry.delete_credential() {
                    Err(keyring::Error::NoEntry) => Ok(()),
                    r => r,
                },
            }
        })
        .await;
        if let Err(e) = r {
            self.no_keyring(&e);
        }
    }

    /// Switches to the keyring entry of a backend (`None`: it has no sign-in) and takes the session
    /// kept there, if any, in place of the one in memory. Without a keyring the one in memory stays.
    pub async fn bind(&self, account: Option<String>) {
        if let Ok(mut g) = self.account.lock() {
            g.clone_from(&account);
        }
        let Some(account) = self.keeping() else {
            return;
        };
        let _one = self.keyring.lock().await;
        let r =
            keyring_call(
                move || match keyring::Entry::new(SERVICE, &account)?.get_password() {
                    Ok(t) => Ok(Some(t)),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(e),
                },
            )
            .await;
        match r {
            Ok(kept) => {
                if kept.is_some() {
                    tracing::info!("a session kept in the keyring was found");
                }
                if let Ok(mut g) = self.token.lock() {
                    *g = kept;
                }
            }
            Err(e) => self.no_keyring(&e),
        }
    }

    /// The entry to keep the session in, while the keyring works.
    fn keeping(&self) -> Option<String> {
        if self.memory_only.load(Ordering::Relaxed) {
            return None;
        }
        self.account.lock().ok().and_then(|g| g.clone())
    }

    fn no_keyring(&self, e: &str) {
        if !self.memory_only.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                "no usable OS keyring (Secret Service): the session is kept in memory only and ends with the app"
            );
        }
    }
}

/// Runs a (blocking) keyring call on the blocking pool, within [`KEYRING_TIMEOUT`]. The error
/// text is the keyring's own (it never contains the secret).
async fn keyring_call<T: Send + 'static>(
    f: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(KEYRING_TIMEOUT, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r.map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the keyring did not answer within {} s",
            KEYRING_TIMEOUT.as_secs()
        )),
    }
}
