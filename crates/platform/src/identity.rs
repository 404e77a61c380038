//! Internal identity: the gateway authenticates the end user, then attaches a signed
//! [`Caller`] to every forwarded call; services verify it and hand handlers a typed caller.
//!
//! Wire format (gRPC metadata): `x-zhengna-identity` = base64url(JSON claims),
//! `x-zhengna-identity-sig` = base64url(HMAC-SHA256(key, identity header value)). Claims
//! carry an expiry so a captured header is only briefly useful. The key is shared by the
//! gateway and the services and never leaves the cluster.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::error::ApiError;

pub const IDENTITY_HEADER: &str = "x-zhengna-identity";
pub const SIGNATURE_HEADER: &str = "x-zhengna-identity-sig";

/// Who is calling: a taxpayer from the e-tax bureau or a member of tax-bureau staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Caller {
    Taxpayer(Taxpayer),
    Agent(Agent),
}

/// A taxpayer (enterprise 办税员 or natural person) as asserted by the e-tax bureau IdP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taxpayer {
    /// 纳税人识别号 (unified social credit code or ID number).
    pub tax_id: String,
    /// 纳税人名称.
    pub name: String,
    /// Code of the 主管税务机关 (in-charge tax office).
    pub office_code: String,
    pub office_name: String,
    /// Profile tags (一般纳税人, 小规模纳税人, 自然人, industry…) used for answers and pushes.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mobile phone on file, offered as the default for phone appointments.
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    Agent,
    Supervisor,
    KbEditor,
    Admin,
}

/// Tax-bureau staff from the internal IdP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_id: String,
    pub name: String,
    /// The office the agent belongs to; agents see only their office's data.
    pub office_code: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub role: AgentRole,
}

impl Caller {
    pub fn taxpayer(&self) -> Result<&Taxpayer, ApiError> {
        match self {
            Caller::Taxpayer(t) => Ok(t),
            Caller::Agent(_) => Err(ApiError::PermissionDenied("taxpayer only".into())),
        }
    }

    pub fn agent(&self) -> Result<&Agent, ApiError> {
        match self {
            Caller::Agent(a) => Ok(a),
            Caller::Taxpayer(_) => Err(ApiError::PermissionDenied("staff only".into())),
        }
    }

    /// Stable subject for logs and rate limits.
    pub fn subject(&self) -> String {
        match self {
            Caller::Taxpayer(t) => format!("taxpayer:{}", t.tax_id),
            Caller::Agent(a) => format!("agent:{}", a.agent_id),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    caller: Caller,
    /// Expiry, unix seconds.
    exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("identity header is malformed")]
    Malformed,
    #[error("identity signature does not verify")]
    BadSignature,
    #[error("identity has expired")]
    Expired,
    #[error("identity key is empty")]
    EmptyKey,
}

/// Signs and verifies internal identities with a shared key.
#[derive(Clone)]
pub struct IdentityKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(<redacted>)")
    }
}

/// How long a signed identity stays valid; a call chain must start within this window.
pub const IDENTITY_TTL_SECS: i64 = 300;

impl IdentityKey {
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        Ok(Self { key: key.to_vec() })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable_key(),
        }
    }

    /// Returns the two header values (identity, signature).
    pub fn sign(&self, caller: &Caller, now_unix: i64) -> (String, String) {
        let claims = Claims { caller: caller.clone(), exp: now_unix + IDENTITY_TTL_SECS };
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let identity = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(identity.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (identity, sig)
    }

    pub fn verify(&self, identity: &str, signature: &str, now_unix: i64) -> Result<Caller, Error> {
        let sig = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Error::Malformed)?;
        let mut mac = self.mac();
        mac.update(identity.as_bytes());
        mac.verify_slice(&sig).map_err(|_| Error::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(identity).map_err(|_| Error::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| Error::Malformed)?;
        if claims.exp < now_unix {
            return Err(Error::Expired);
        }
        Ok(claims.caller)
    }

    /// Base64url HMAC-SHA256 of `data`: the signature of a short-lived capability such as a
    /// download URL. Callers put a purpose prefix into `data` so tags never cross uses.
    pub fn tag(&self, data: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(data);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks a [`IdentityKey::tag`] in constant time.
    pub fn verify_tag(&self, data: &[u8], tag: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(tag) else { return false };
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(&sig).is_ok()
    }

    /// Writes a signed identity into outgoing metadata, replacing anything there.
    pub fn attach(&self, caller: &Caller, metadata: &mut MetadataMap) {
        let (identity, sig) = self.sign(caller, now_unix());
        if let (Ok(i), Ok(s)) = (MetadataValue::try_from(identity), MetadataValue::try_from(sig)) {
            metadata.insert(IDENTITY_HEADER, i);
            metadata.insert(SIGNATURE_HEADER, s);
        }
    }
}

#[cold]
fn unreachable_key() -> ! {
    panic!("hmac rejected a key, which it never does")
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Removes identity headers a client may have sent; the gateway calls this on every request.
pub fn strip(headers: &mut http::HeaderMap) {
    headers.remove(IDENTITY_HEADER);
    headers.remove(SIGNATURE_HEADER);
}

/// The verified caller of a request, placed in request extensions by the server layer.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no verified identity on request".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taxpayer() -> Caller {
        Caller::Taxpayer(Taxpayer {
            tax_id: "91370100MA3C000001".into(),
            name: "济南示例商贸有限公司".into(),
            office_code: "13701000000".into(),
            office_name: "国家税务总局济南市税务局".into(),
            tags: vec!["小规模纳税人".into()],
            phone: "13800000000".into(),
        })
    }

    #[test]
    fn tags_verify_only_their_data_and_key() {
        let k = IdentityKey::new(b"k").expect("key");
        let t = k.tag(b"file|a|100");
        assert!(k.verify_tag(b"file|a|100", &t));
        assert!(!k.verify_tag(b"file|a|101", &t));
        assert!(!IdentityKey::new(b"other").expect("key").verify_tag(b"file|a|100", &t));
        assert!(!k.verify_tag(b"file|a|100", "not base64!"));
    }

    #[test]
    fn round_trip() {
        let k = IdentityKey::new(b"k").expect("key");
        let (i, s) = k.sign(&taxpayer(), 1000);
        assert_eq!(k.verify(&i, &s, 1001), Ok(taxpayer()));
    }

    #[test]
    fn tampered_identity_is_rejected() {
        let k = IdentityKey::new(b"k").expect("key");
        let (_, s) = k.sign(&taxpayer(), 1000);
        let agent = Caller::Agent(Agent {
            agent_id: "a1".into(),
            name: "x".into(),
            office_code: "1".into(),
            groups: vec![],
            role: AgentRole::Admin,
        });
        let (forged, _) = k.sign(&agent, 1000);
        assert_eq!(k.verify(&forged, &s, 1001), Err(Error::BadSignature));
        let other = IdentityKey::new(b"other").expect("key");
        let (i, s) = other.sign(&agent, 1000);
        assert_eq!(k.verify(&i, &s, 1001), Err(Error::BadSignature));
    }

    #[test]
    fn expired_identity_is_rejected() {
        let k = IdentityKey::new(b"k").expect("key");
        let (i, s) = k.sign(&taxpayer(), 1000);
        assert_eq!(k.verify(&i, &s, 1000 + IDENTITY_TTL_SECS + 1), Err(Error::Expired));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = IdentityKey::new(b"k").expect("key");
        assert_eq!(k.verify("!!", "!!", 0), Err(Error::Malformed));
        assert!(IdentityKey::new(b"").is_err());
    }
}

/// The `identity` config section shared by the gateway and every service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// HMAC key for internal identities; the same value on the gateway and all services.
    pub key: crate::config::Secret,
}

impl IdentityConfig {
    pub fn key(&self) -> Result<IdentityKey, crate::StartupError> {
        IdentityKey::new(self.key.expose().as_bytes()).map_err(|_| {
            crate::StartupError::Config("identity.key is not set (env ZHENGNA_<SERVICE>__IDENTITY__KEY)".into())
        })
    }
}
