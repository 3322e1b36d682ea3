//! The OpenID Connect client (authorization code + PKCE S256, state, nonce) on `openidconnect`:
//! discovery (lazy, so the server starts while the provider is down), the authorization URL, the
//! code exchange, and ID-token verification (signature through the provider's JWKS, iss, aud, azp,
//! exp, nonce), with one JWKS refetch when a token is signed by a key id not seen before (Google
//! rotates its keys).

use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::AuthConfig;

use super::{AuthError, Identity};

/// Google's extra ID-token claim: the Workspace domain of the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoogleClaims {
    hd: Option<String>,
}
impl AdditionalClaims for GoogleClaims {}

type Fields = IdTokenFields<
    GoogleClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<Fields, CoreTokenType>;
type OidcClient = Client<
    GoogleClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a sign-in attempt must remember until the provider sends the browser back.
pub struct Attempt {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    /// The client built from the discovery document and JWKS; `None` until first needed.
    client: Mutex<Option<OidcClient>>,
}

impl Oidc {
    pub fn new(cfg: &AuthConfig) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            // No redirects (SSRF safety: a provider's answer never sends us elsewhere), and a
            // budget for every request so a slow provider is an error, not a hang.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(|e| AuthError::Provider(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            // The configured text exactly: `iss` must match it character for character.
            issuer: IssuerUrl::new(cfg.issuer.as_str().trim_end_matches('/').to_string())
                .map_err(|e| AuthError::Provider(format!("issuer: {e}")))?,
            client_id: ClientId::new(cfg.client_id.clone()),
            client_secret: ClientSecret::new(cfg.client_secret.expose().to_string()),
            redirect: RedirectUrl::new(cfg.redirect_url.to_string())
                .map_err(|e| AuthError::Provider(format!("redirect_url: {e}")))?,
            http,
            client: Mutex::new(None),
        })
    }

    async fn discover(&self) -> Result<OidcClient, AuthError> {
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                AuthError::Provider(format!(
                    "discovery at {} failed: {}",
                    self.issuer.as_str(),
                    chain(&e)
                ))
            })?;
        Ok(OidcClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
        // client_secret_post, which Google and the test provider both accept.
        .set_auth_type(AuthType::RequestBody))
    }

    /// The discovered client, discovering on first use (or after a failure).
    async fn client(&self) -> Result<OidcClient, AuthError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.discover().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The provider's authorization URL for a new attempt, and what to remember of it.
    pub async fn authorize_url(&self) -> Result<(url::Url, Attempt), AuthError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url,
            Attempt {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges the code and verifies the ID token; returns who signed in.
    pub async fn finish(&self, attempt: Attempt, code: String) -> Result<Identity, AuthError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| AuthError::Provider(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(attempt.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => AuthError::Refused(format!(
                    "the token endpoint answered {}{}",
                    r.error().as_ref(),
                    r.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                )),
                other => AuthError::Provider(format!("token request failed: {}", chain(&other))),
            })?;
        let id_token = openidconnect::TokenResponse::id_token(&response)
            .ok_or_else(|| AuthError::InvalidToken("the token response has no ID token".into()))?;
        let nonce = Nonce::new(attempt.nonce);

        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // A key id we have not seen: the provider may have rotated its keys. Fetch the
                // discovery document and JWKS again, once, and retry.
                tracing::info!(
                    "ID token signed by an unknown key id; refetching the provider's keys"
                );
                let fresh = self.discover().await?;
                let c = id_token
                    .claims(&fresh.id_token_verifier(), &nonce)
                    .map_err(|e| AuthError::InvalidToken(e.to_string()))?
                    .clone();
                *self.client.lock().await = Some(fresh);
                c
            }
            Err(e) => return Err(AuthError::InvalidToken(e.to_string())),
        };
        // openidconnect 4.1 leaves the azp check out (commented out in its verifier), so it is
        // made here: a token issued to another client of the same provider is refused.
        if let Some(azp) = claims.authorized_party() {
            if azp.as_str() != self.client_id.as_str() {
                return Err(AuthError::InvalidToken(format!(
                    "the authorized party (azp) {:?} is not this client",
                    azp.as_str()
                )));
            }
        }
        let email = claims
            .email()
            .map(|e| e.as_str().trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                AuthError::InvalidToken(
                    "the ID token carries no email (is the email scope granted?)".into(),
                )
            })?;
        Ok(Identity {
            sub: claims.subject().as_str().to_string(),
            email,
            email_verified: claims.email_verified() == Some(true),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            hd: claims
                .additional_claims()
                .hd
                .as_ref()
                .map(|d| d.trim().to_lowercase()),
        })
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
