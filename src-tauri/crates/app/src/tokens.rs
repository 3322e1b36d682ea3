//! API tokens' use cases (Admins only): list, create (the secret answered once), revoke. Creating
//! and revoking need a signed-in Admin: a token cannot make or end tokens, so a leaked one cannot
//! keep itself alive by minting others.

use std::sync::Arc;

use dsmon_auth::tokens::{NewToken, NewTokenRequest};
use dsmon_core::{Caller, Role};
use dsmon_store::auth_db::ApiTokenRecord;

use crate::{Access, App, AppError, ErrorKind, Result, Who};

/// `{"tokens": [...]}`, newest first.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<ApiTokenRecord>,
}

impl App {
    /// An Admin who signed in (not a token).
    fn token_admin(&self, access: &Access) -> Result<Caller> {
        let caller = self.require(access, Role::Admin, "API token administration")?;
        if let Who::Token(_) = access.who {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "API tokens cannot create or revoke API tokens: sign in as an Admin",
            ));
        }
        Ok(caller)
    }

    pub async fn tokens(&self, access: &Access) -> Result<TokenList> {
        self.require(access, Role::Admin, "API token administration")?;
        let auth = Arc::clone(self.sign_in()?);
        let tokens = tokio::task::spawn_blocking(move || auth.tokens()).await??;
        Ok(TokenList { tokens })
    }

    /// `body`: `{"name", "role", "expires"}` (see [`NewTokenRequest`]). Answers the token with its
    /// secret, which is not kept and cannot be shown again.
    pub async fn create_token(&self, access: &Access, body: &[u8]) -> Result<NewToken> {
        let actor = self.token_admin(access)?;
        let auth = Arc::clone(self.sign_in()?);
        let req =
            NewTokenRequest::parse(body, dsmon_core::unix_now()).map_err(AppError::bad_request)?;
        Ok(tokio::task::spawn_blocking(move || auth.create_token(&actor, req)).await??)
    }

    /// `id`: the token's id as the path gives it.
    pub async fn revoke_token(&self, access: &Access, id: &str) -> Result<ApiTokenRecord> {
        let actor = self.token_admin(access)?;
        let auth = Arc::clone(self.sign_in()?);
        let id: i64 = id
            .parse()
            .map_err(|_| AppError::bad_request(format!("{id:?} is not a token id")))?;
        Ok(tokio::task::spawn_blocking(move || auth.revoke_token(&actor, id)).await??)
    }
}
