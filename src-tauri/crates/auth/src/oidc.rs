//! The OpenID Connect client (authorization code + PKCE S256, state, nonce) on `openidconnect`:
//! discovery (lazy, so the server starts while the provider is down), the authorization URL, the
//! code exchange, and ID-token verification (signature through the provider's JWKS, iss, aud, azp,
//! exp, nonce). A token signed by a key id not in the cached key set makes the provider's JWKS be
//! fetched again (Google rotates its keys) — at most once a minute, however many such tokens
//! arrive, and concurrent ones wait for the same fetch — so that made-up key ids cannot make dsmon
//! hammer the provider.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::JsonWebKeySet;
use openidconnect::{
    AdditionalClaims, AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use dsmon_config::AuthConfig;

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
type IdToken = openidconnect::IdToken<
    GoogleClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
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
    /// The redirect URI of this attempt (the token request repeats it).
    pub redirect: RedirectUrl,
}

impl Attempt {
    /// An attempt kept elsewhere (the store), taken up again to finish it.
    pub fn resume(
        state: String,
        nonce: String,
        pkce_verifier: String,
        redirect: &str,
    ) -> Result<Self, AuthError> {
        let redirect =
            RedirectUrl::new(redirect.to_string()).map_err(|_| AuthError::UnknownAttempt)?;
        Ok(Self {
            state,
            nonce,
            pkce_verifier,
            redirect,
        })
    }
}

/// A verified sign-in: who, and the ID token itself (the desktop app hands it to a server).
pub struct Verified {
    pub identity: Identity,
    pub id_token: String,
}

pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    /// The server's `/auth/callback`; `None` in the desktop app, whose every attempt has its own.
    redirect: Option<RedirectUrl>,
    http: reqwest::Client,
    /// The provider's discovery document with its JWKS; `None` until first needed.
    metadata: Mutex<Option<Cached>>,
    /// When the keys were last fetched again for an unknown key id; held during that fetch, so
    /// concurrent callers share it.
    refetched: Mutex<Option<Instant>>,
}

/// The provider's metadata and the generation of its key set (one more at each refetch).
#[derive(Clone)]
struct Cached {
    metadata: CoreProviderMetadata,
    generation: u64,
}

/// Keys are fetched again for an unknown key id at most this often.
pub const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(60);

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
            redirect: cfg
                .redirect_url
                .as_ref()
                .map(|u| RedirectUrl::new(u.to_string()))
                .transpose()
                .map_err(|e| AuthError::Provider(format!("redirect_url: {e}")))?,
            http,
            metadata: Mutex::new(None),
            refetched: Mutex::new(None),
        })
    }

    /// The issuer, exactly as ID tokens must name it (`iss`).
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    async fn discover(&self) -> Result<CoreProviderMetadata, AuthError> {
        CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                AuthError::Provider(format!(
                    "discovery at {} failed: {}",
                    self.issuer.as_str(),
                    chain(&e)
                ))
            })
    }

    /// This client (`client_id`) over the provider's metadata.
    fn client_of(&self, metadata: CoreProviderMetadata) -> OidcClient {
        OidcClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        // client_secret_post, which Google and the test provider both accept.
        .set_auth_type(AuthType::RequestBody)
    }

    /// The provider's metadata, discovering on first use (or after a failure).
    async fn cached(&self) -> Result<Cached, AuthError> {
        let mut guard = self.metadata.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = Cached {
            metadata: self.discover().await?,
            generation: 0,
        };
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn client(&self) -> Result<OidcClient, AuthError> {
        Ok(self.client_of(self.cached().await?.metadata))
    }

    /// The key set after a token named a key id that `seen` lacks: fetched again, unless another
    /// caller did so meanwhile (its result is taken) or the last refetch was less than
    /// [`JWKS_REFETCH_EVERY`] ago (`None`: the keys stay as they are).
    async fn refetch_keys(&self, seen: &Cached) -> Result<Option<Cached>, AuthError> {
        let mut last = self.refetched.lock().await;
        let current = self.cached().await?;
        if current.generation != seen.generation {
            return Ok(Some(current));
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_EVERY) {
            tracing::debug!("ID token signed by an unknown key id; keys were fetched again less than a minute ago");
            return Ok(None);
        }
        // Counted before the fetch: a failing provider is not asked again at once either.
        *last = Some(Instant::now());
        tracing::info!("ID token signed by an unknown key id; fetching the provider's keys again");
        let jwks = JsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| {
                AuthError::Provider(format!(
                    "fetching the keys at {} failed: {}",
                    current.metadata.jwks_uri().as_str(),
                    chain(&e)
                ))
            })?;
        let fresh = Cached {
            metadata: current.metadata.clone().set_jwks(jwks),
            generation: current.generation + 1,
        };
        *self.metadata.lock().await = Some(fresh.clone());
        Ok(Some(fresh))
    }

    /// The provider's authorization URL for a new attempt, and what to remember of it. The
    /// provider sends the browser back to `redirect` (the desktop app's loopback address), or to
    /// the configured `redirect_url`. The ID token will carry `nonce`: one a dsmon server issued
    /// (the desktop app's remote mode, which hands the token to that server), else a new random one.
    pub async fn authorize_url(
        &self,
        redirect: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<(url::Url, Attempt), AuthError> {
        let redirect = match redirect {
            Some(r) => RedirectUrl::new(r.to_string())
                .map_err(|e| AuthError::Provider(format!("redirect URI {r:?}: {e}")))?,
            None => self.redirect.clone().ok_or_else(|| {
                AuthError::Provider("[auth] redirect_url is not configured".into())
            })?,
        };
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let given = nonce.map(|n| Nonce::new(n.to_string()));
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                || given.unwrap_or_else(Nonce::new_random),
            )
            .set_redirect_uri(std::borrow::Cow::Borrowed(&redirect))
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
                redirect,
            },
        ))
    }

    /// Exchanges the code and verifies the ID token; returns who signed in.
    pub async fn finish(&self, attempt: Attempt, code: String) -> Result<Verified, AuthError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| AuthError::Provider(format!("the provider has no token endpoint: {e}")))?
            .set_redirect_uri(std::borrow::Cow::Borrowed(&attempt.redirect))
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
        let (identity, _) = self
            .verify(id_token, &self.client_id, |n: Option<&Nonce>| match n {
                Some(n) if n.secret() == nonce.secret() => Ok(()),
                Some(_) => Err("nonce mismatch".to_string()),
                None => Err("the ID token has no nonce".to_string()),
            })
            .await?;
        Ok(Verified {
            identity,
            id_token: id_token.to_string(),
        })
    }

    /// Verifies an ID token that another client of this provider (the desktop app, `audience`)
    /// obtained itself: signature, iss, aud, azp and exp, and that it carries a nonce, which is
    /// returned with the identity. The desktop client is public (every copy of the app, for every
    /// dsmon server, has its id and secret), so the token alone does not say which server it was
    /// meant for: the caller accepts it only when it issued that nonce itself and has not seen it
    /// used (OpenID Connect's own binding of an ID token to the party that asked for it).
    pub async fn verify_foreign(
        &self,
        raw: &str,
        audience: &str,
    ) -> Result<(Identity, String), AuthError> {
        let token: IdToken = raw
            .trim()
            .parse()
            .map_err(|e| AuthError::InvalidToken(format!("not an ID token: {e}")))?;
        let (identity, nonce) = self
            .verify(
                &token,
                &ClientId::new(audience.to_string()),
                |n: Option<&Nonce>| match n {
                    Some(n) if !n.secret().is_empty() => Ok(()),
                    _ => Err(
                        "the ID token has no nonce: it was not requested for this server"
                            .to_string(),
                    ),
                },
            )
            .await?;
        let nonce =
            nonce.ok_or_else(|| AuthError::InvalidToken("the ID token has no nonce".into()))?;
        Ok((identity, nonce))
    }

    /// The verified identity in `id_token`, issued to `audience`, and the token's nonce (checked
    /// by `nonce`).
    async fn verify<N: openidconnect::NonceVerifier + Clone>(
        &self,
        id_token: &IdToken,
        audience: &ClientId,
        nonce: N,
    ) -> Result<(Identity, Option<String>), AuthError> {
        let verifier_of = |c: &Cached| {
            OidcClient::from_provider_metadata(c.metadata.clone(), audience.clone(), None)
        };
        let cached = self.cached().await?;
        let claims = match id_token.claims(&verifier_of(&cached).id_token_verifier(), nonce.clone())
        {
            Ok(c) => c.clone(),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // A key id we have not seen: the provider may have rotated its keys.
                let Some(fresh) = self.refetch_keys(&cached).await? else {
                    return Err(AuthError::InvalidToken(
                        "signed by a key the provider does not publish (its keys were fetched again less than a minute ago)".into(),
                    ));
                };
                id_token
                    .claims(&verifier_of(&fresh).id_token_verifier(), nonce)
                    .map_err(|e| AuthError::InvalidToken(e.to_string()))?
                    .clone()
            }
            Err(e) => return Err(AuthError::InvalidToken(e.to_string())),
        };
        // openidconnect 4.1 leaves the azp check out (commented out in its verifier), so it is
        // made here: a token issued to another client of the same provider is refused.
        if let Some(azp) = claims.authorized_party() {
            if azp.as_str() != audience.as_str() {
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
        let identity = Identity {
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
            expires_at: claims.expiration().timestamp(),
        };
        Ok((identity, claims.nonce().map(|n| n.secret().clone())))
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
