//! API tokens: an Admin makes one with a name, a role and an optional expiry; its secret,
//! `dsmon_` and 256 random bits in URL-safe base64, is shown once and stored only as its SHA-256.
//! A plain fast hash is right here (as for sessions): the secret is random and as long as a key,
//! so there is nothing to guess that a slow password hash would protect, and every request with a
//! token is one hash and one indexed look-up.
//!
//! A token acts with its role under the name `token:NAME` (the audit log's actor), for as long as
//! it is neither expired nor revoked AND the Admin who made it is still an Admin (a creator
//! blocked or demoted takes their tokens' access with them). Its last use is written at most once
//! a minute, so a busy script does not turn every request into a write.

use serde::Serialize;

use dsmon_core::{Caller, Role};
use dsmon_store::auth_db::ApiTokenRecord;

use crate::{hash_session, now, random_id, resolve_role, Auth, AuthError, Result};

/// How every token's secret starts, so it is told apart from a session id (and found by secret
/// scanners).
pub const TOKEN_PREFIX: &str = "dsmon_";

/// The longest name a token may have, in characters.
pub const MAX_NAME: usize = 64;

/// A token's last use is written at most this often (seconds).
const TOUCH_EVERY: i64 = 60;

/// Whether a bearer value is an API token's secret (rather than a session id).
pub fn is_api_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

/// What an Admin asks for: `{"name": "ci", "role": "user" | "admin", "expires": null | "90d" |
/// "2026-12-31T00:00:00Z"}` (`expires`: a duration from now, an RFC 3339 time, or null/absent for
/// never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokenRequest {
    pub name: String,
    pub role: Role,
    /// Unix seconds; `None`: never.
    pub expires: Option<i64>,
}

/// `POST /api/tokens`: `expires` is a duration from now (`"90d"`, `"12h"`), an RFC 3339 time, or
/// absent/null for never.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// 1 to 64 characters, unique among every token ever made.
    name: String,
    /// `admin` or `user`.
    role: String,
    #[serde(default)]
    expires: Option<String>,
}

impl NewTokenRequest {
    /// Parses and checks a request made at `now`; the message says what is wrong.
    pub fn parse(json: &[u8], now: i64) -> std::result::Result<Self, String> {
        let b: NewTokenBody = serde_json::from_slice(json).map_err(|e| {
            format!("expected {{\"name\": \"...\", \"role\": \"admin\" | \"user\", \"expires\": \"90d\" | RFC 3339 | null}}: {e}")
        })?;
        let name = b.name.trim().to_string();
        if name.is_empty() {
            return Err("name must not be empty".into());
        }
        if name.chars().count() > MAX_NAME {
            return Err(format!("name must be at most {MAX_NAME} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        let role = match b.role.as_str() {
            "admin" => Role::Admin,
            "user" => Role::User,
            other => return Err(format!("role must be \"admin\" or \"user\", not {other:?}")),
        };
        let expires = match b.expires.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_expiry(text, now)?),
        };
        Ok(Self {
            name,
            role,
            expires,
        })
    }
}

/// A duration from `now` ("90d", "2s") or an RFC 3339 time, which must be after `now`.
fn parse_expiry(text: &str, now: i64) -> std::result::Result<i64, String> {
    let at = if let Ok(d) = humantime::parse_duration(text) {
        let secs = i64::try_from(d.as_secs()).map_err(|_| "expires is too far away".to_string())?;
        now.checked_add(secs)
            .ok_or_else(|| "expires is too far away".to_string())?
    } else {
        let t = humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!("expires must be a duration (\"90d\") or an RFC 3339 time, not {text:?}")
        })?;
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => {
                i64::try_from(d.as_secs()).map_err(|_| "expires is too far away".to_string())?
            }
            Err(_) => return Err("expires is in the past".into()),
        }
    };
    if at <= now {
        return Err("expires is in the past".into());
    }
    Ok(at)
}

/// A token just made: how it is listed, and its secret, shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub token: ApiTokenRecord,
    pub secret: String,
}

/// The name a token acts under (the audit log's actor).
pub fn actor_name(token_name: &str) -> String {
    format!("token:{token_name}")
}

impl Auth {
    /// Makes a token for `actor` (an Admin, checked by the caller); audited.
    pub fn create_token(&self, actor: &Caller, req: NewTokenRequest) -> Result<NewToken> {
        let secret = format!("{TOKEN_PREFIX}{}", random_id()?);
        let t = now();
        let token = self
            .db
            .create_api_token(
                &hash_session(&secret),
                &req.name,
                req.role,
                &actor.email,
                t,
                req.expires,
            )?
            .ok_or_else(|| AuthError::TokenNameTaken(req.name.clone()))?;
        let expiry = token
            .expires
            .map_or("never expires".to_string(), |e| format!("expires at {e}"));
        self.audit(
            Some(&actor.email),
            "token_created",
            Some(&actor_name(&token.name)),
            Some(&format!("role {}, {expiry}", token.role.as_str())),
        );
        Ok(NewToken { token, secret })
    }

    /// Every token, newest first (revoked and expired ones too).
    pub fn tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        Ok(self.db.api_tokens()?)
    }

    /// Revokes a token now; audited (a token already revoked is answered as it is).
    pub fn revoke_token(&self, actor: &Caller, id: i64) -> Result<ApiTokenRecord> {
        let t = now();
        let token = self
            .db
            .revoke_api_token(id, t)?
            .ok_or(AuthError::UnknownToken(id))?;
        if token.revoked == Some(t) {
            self.audit(
                Some(&actor.email),
                "token_revoked",
                Some(&actor_name(&token.name)),
                None,
            );
        }
        Ok(token)
    }

    /// The caller behind an API token's secret: `None` when unknown, expired, revoked, or its
    /// creator is no longer an Admin. A use is recorded at most once a minute.
    pub fn api_token(&self, secret: &str) -> Result<Option<Caller>> {
        let t = now();
        let Some(token) = self.db.api_token(&hash_session(secret), t)? else {
            return Ok(None);
        };
        let creator = self.db.user(&token.created_by)?;
        let creator_admin = creator.as_ref().is_some_and(|u| {
            matches!(
                resolve_role(&self.cfg, &u.email, u.hd.as_deref(), Some(u)),
                Ok((Role::Admin, _))
            )
        });
        if !creator_admin {
            tracing::debug!(
                token = %token.name,
                creator = %token.created_by,
                "API token refused: its creator is no longer an Admin"
            );
            return Ok(None);
        }
        if token.last_used.is_none_or(|l| t - l >= TOUCH_EVERY) {
            self.db.touch_api_token(token.id, t)?;
        }
        Ok(Some(Caller {
            email: actor_name(&token.name),
            name: Some(format!("API token of {}", token.created_by)),
            role: token.role,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let r = NewTokenRequest::parse(br#"{"name": " ci ", "role": "user"}"#, NOW).expect("ok");
        assert_eq!(
            (r.name.as_str(), r.role, r.expires),
            ("ci", Role::User, None)
        );
        let r = NewTokenRequest::parse(br#"{"name": "d", "role": "admin", "expires": "90d"}"#, NOW)
            .expect("ok");
        assert_eq!(r.expires, Some(NOW + 90 * 86_400));
        let r = NewTokenRequest::parse(
            br#"{"name": "d", "role": "admin", "expires": "2030-01-01T00:00:00Z"}"#,
            NOW,
        )
        .expect("ok");
        assert_eq!(r.expires, Some(1_893_456_000));
        let long = format!(
            r#"{{"name": "{}", "role": "user"}}"#,
            "x".repeat(MAX_NAME + 1)
        );
        for (bad, why) in [
            (&br#"{"name": "  ", "role": "user"}"#[..], "empty"),
            (long.as_bytes(), "at most"),
            (br#"{"name": "a", "role": "root"}"#, "role must be"),
            (
                br#"{"name": "a", "role": "user", "expires": "2020-01-01T00:00:00Z"}"#,
                "past",
            ),
            (br#"{"name": "a", "role": "user", "expires": "0s"}"#, "past"),
            (
                br#"{"name": "a", "role": "user", "expires": "soon"}"#,
                "duration",
            ),
            (br#"{"name": "a\u0007", "role": "user"}"#, "control"),
            (br#"{"name": "a", "role": "user", "x": 1}"#, "expected"),
            (br#"{"role": "user"}"#, "expected"),
        ] {
            let e = NewTokenRequest::parse(bad, NOW).expect_err(why);
            assert!(e.contains(why), "{e} should say {why}");
        }
    }

    #[test]
    fn secrets_are_told_from_sessions() {
        assert!(is_api_token("dsmon_abc"));
        assert!(!is_api_token("abc"));
        assert_eq!(actor_name("ci"), "token:ci");
    }
}
