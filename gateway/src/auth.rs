//! End-user authentication: JWTs (RS256/ES256 only) checked against the JWKS of each
//! configured issuer. Taxpayer tokens come from the e-tax bureau's IdP, staff tokens from
//! the internal IdP; the issuer decides which kind of caller a token makes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use zhengna_platform::StartupError;
use zhengna_platform::identity::{Agent, AgentRole, Caller, Taxpayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    Taxpayer,
    Agent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim; empty skips the audience check.
    #[serde(default)]
    pub audience: String,
    pub kind: CallerKind,
    /// JWKS file (re-read every `refresh_secs`), or …
    #[serde(default)]
    pub jwks_path: Option<PathBuf>,
    /// … JWKS URL (fetched every `refresh_secs`).
    #[serde(default)]
    pub jwks_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub issuers: Vec<IssuerConfig>,
    /// Run the built-in development issuer with demo identities (never in production).
    pub dev_issuer: bool,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway_secs: u64,
    pub refresh_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { issuers: Vec::new(), dev_issuer: false, leeway_secs: 30, refresh_secs: 300 }
    }
}

/// Claims zhengna reads from a token; IdP-specific names are mapped at the IdP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    /// Taxpayer: 纳税人识别号. Staff: agent id.
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub office_code: String,
    #[serde(default)]
    pub office_name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AgentRole>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm not allowed")]
    Algorithm,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token has expired")]
    Expired,
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("token lacks required claims: {0}")]
    Claims(&'static str),
}

struct Key {
    key: DecodingKey,
    alg: Algorithm,
    issuer: usize,
}

/// Verifies tokens; key sets can be replaced while running (JWKS refresh).
#[derive(Clone)]
pub struct Authenticator {
    issuers: Arc<Vec<IssuerConfig>>,
    keys: Arc<RwLock<HashMap<String, Vec<Key>>>>,
    leeway: u64,
    /// Tokens already verified, with their expiry: a browser sends the same token on every
    /// call, and an ES256/RS256 check costs more than the rest of forwarding a message.
    /// Cleared whenever keys change; an entry is used only before its `exp`.
    verified: Arc<std::sync::Mutex<HashMap<String, (Caller, i64)>>>,
}

/// Verified tokens kept at most; the cache is emptied when it fills.
const VERIFIED_CACHE: usize = 100_000;

fn keys_from_jwks(set: &JwkSet, issuer: usize) -> Vec<(String, Key)> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let alg = match jwk.common.key_algorithm {
                Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
                Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => return None,
                },
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((jwk.common.key_id.clone().unwrap_or_default(), Key { key, alg, issuer }))
        })
        .collect()
}

impl Authenticator {
    pub fn new(issuers: Vec<IssuerConfig>, leeway: u64) -> Self {
        Self {
            issuers: Arc::new(issuers),
            keys: Arc::new(RwLock::new(HashMap::new())),
            leeway,
            verified: Arc::new(std::sync::Mutex::new(HashMap::new())),
        }
    }

    pub fn issuers(&self) -> &[IssuerConfig] {
        &self.issuers
    }

    /// Replaces the keys of issuer `index`.
    pub fn set_jwks(&self, index: usize, set: &JwkSet) -> usize {
        let new = keys_from_jwks(set, index);
        let n = new.len();
        if let Ok(mut cache) = self.verified.lock() {
            cache.clear();
        }
        if let Ok(mut keys) = self.keys.write() {
            for list in keys.values_mut() {
                list.retain(|k| k.issuer != index);
            }
            for (kid, key) in new {
                keys.entry(kid).or_default().push(key);
            }
            keys.retain(|_, v| !v.is_empty());
        }
        n
    }

    /// Loads every issuer's JWKS once; fails start-up when one cannot be read.
    pub async fn load_all(&self, http: &reqwest::Client) -> Result<(), StartupError> {
        for i in 0..self.issuers.len() {
            self.load(i, http).await.map_err(StartupError::Config)?;
        }
        Ok(())
    }

    async fn load(&self, index: usize, http: &reqwest::Client) -> Result<usize, String> {
        let issuer = &self.issuers[index];
        let set: JwkSet = match (&issuer.jwks_path, &issuer.jwks_url) {
            (Some(path), _) => {
                let text =
                    tokio::fs::read_to_string(path).await.map_err(|e| format!("jwks {}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("jwks {}: {e}", path.display()))?
            }
            (None, Some(url)) => http
                .get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("jwks {url}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("jwks {url}: {e}"))?,
            (None, None) => return Ok(0),
        };
        let n = self.set_jwks(index, &set);
        if n == 0 {
            return Err(format!("issuer {}: JWKS has no RS256/ES256 keys", issuer.issuer));
        }
        Ok(n)
    }

    /// Re-reads every JWKS periodically so IdP key rotation needs no restart.
    pub async fn refresh_forever(
        self,
        http: reqwest::Client,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            for i in 0..self.issuers.len() {
                if let Err(e) = self.load(i, &http).await {
                    tracing::warn!(error = %e, "jwks refresh failed; keeping previous keys");
                }
            }
        }
    }

    /// Verifies `token` and maps its claims to a caller.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let now = chrono::Utc::now().timestamp();
        if let Ok(cache) = self.verified.lock()
            && let Some((caller, exp)) = cache.get(token)
            && now < *exp
        {
            return Ok(caller.clone());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::Algorithm);
        }
        let keys = self.keys.read().map_err(|_| AuthError::Invalid("key store poisoned".into()))?;
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => keys.get(kid).map(|v| v.iter().collect()).unwrap_or_default(),
            None => keys.values().flatten().collect(),
        };
        let mut last = AuthError::UnknownKey;
        for key in candidates.into_iter().filter(|k| k.alg == header.alg) {
            let issuer = &self.issuers[key.issuer];
            let mut v = Validation::new(key.alg);
            v.leeway = self.leeway;
            v.validate_nbf = true;
            v.set_issuer(&[&issuer.issuer]);
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
            if issuer.audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&[&issuer.audience]);
            }
            match jsonwebtoken::decode::<TokenClaims>(token, &key.key, &v) {
                Ok(data) => {
                    let exp = data.claims.exp;
                    let caller = to_caller(issuer.kind, data.claims)?;
                    if let Ok(mut cache) = self.verified.lock() {
                        if cache.len() >= VERIFIED_CACHE {
                            cache.clear();
                        }
                        cache.insert(token.to_owned(), (caller.clone(), exp));
                    }
                    return Ok(caller);
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                        other => AuthError::Invalid(format!("{other:?}")),
                    };
                }
            }
        }
        Err(last)
    }
}

fn to_caller(kind: CallerKind, c: TokenClaims) -> Result<Caller, AuthError> {
    if c.sub.trim().is_empty() {
        return Err(AuthError::Claims("sub"));
    }
    if c.office_code.trim().is_empty() {
        return Err(AuthError::Claims("office_code"));
    }
    Ok(match kind {
        CallerKind::Taxpayer => Caller::Taxpayer(Taxpayer {
            tax_id: c.sub,
            name: c.name,
            office_code: c.office_code,
            office_name: c.office_name,
            tags: c.tags,
            phone: c.phone,
        }),
        CallerKind::Agent => Caller::Agent(Agent {
            agent_id: c.sub,
            name: c.name,
            office_code: c.office_code,
            groups: c.groups,
            role: c.role.unwrap_or(AgentRole::Agent),
        }),
    })
}
