//! The development issuer: an in-memory ES256 key, demo identities, and `/dev/*` endpoints
//! that hand out tokens for them. Enabled only by `auth.dev_issuer = true` (local runs and
//! tests); the keys die with the process.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;
use zhengna_platform::identity::AgentRole;

use crate::auth::{CallerKind, IssuerConfig, TokenClaims};

pub const DEV_TAXPAYER_ISSUER: &str = "zhengna-dev-etax";
pub const DEV_STAFF_ISSUER: &str = "zhengna-dev-staff";

/// An ES256 signing key with its JWKS, used by the dev issuer and by tests.
pub struct Minter {
    kid: String,
    encoding: EncodingKey,
    jwks: JwkSet,
}

impl Minter {
    /// A fresh random key.
    pub fn generate(kid: &str) -> Result<Self, String> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).map_err(|e| e.to_string())?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let point = secret.public_key().to_encoded_point(false);
        let (x, y) = match (point.x(), point.y()) {
            (Some(x), Some(y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            _ => return Err("public key has no coordinates".into()),
        };
        let jwks: JwkSet = serde_json::from_value(serde_json::json!({
            "keys": [{ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" }]
        }))
        .map_err(|e| e.to_string())?;
        Ok(Self { kid: kid.to_owned(), encoding, jwks })
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub fn jwks_json(&self) -> String {
        serde_json::to_string_pretty(&self.jwks).unwrap_or_default()
    }

    /// Signs `claims` (ES256, this key's kid).
    pub fn mint(&self, claims: &TokenClaims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// A demo login.
#[derive(Debug, Clone, Serialize)]
pub struct DemoIdentity {
    pub id: &'static str,
    pub kind: CallerKind,
    pub label: &'static str,
    pub sub: &'static str,
    pub name: &'static str,
    pub office_code: &'static str,
    pub office_name: &'static str,
    pub tags: &'static [&'static str],
    pub phone: &'static str,
    pub groups: &'static [&'static str],
    pub role: Option<AgentRole>,
}

const JINAN_LIXIA: (&str, &str) = ("13701020000", "国家税务总局济南市历下区税务局");
const QINGDAO_SHINAN: (&str, &str) = ("13702020000", "国家税务总局青岛市市南区税务局");
const PROVINCE: (&str, &str) = ("13700000000", "国家税务总局山东省税务局");

pub const DEMO_IDENTITIES: &[DemoIdentity] = &[
    DemoIdentity {
        id: "taxpayer-jinan",
        kind: CallerKind::Taxpayer,
        label: "纳税人 · 小规模纳税人（济南历下）",
        sub: "91370102MA3DEMO01X",
        name: "济南泉城示例商贸有限公司",
        office_code: JINAN_LIXIA.0,
        office_name: JINAN_LIXIA.1,
        tags: &["小规模纳税人", "批发和零售业"],
        phone: "13800000001",
        groups: &[],
        role: None,
    },
    DemoIdentity {
        id: "taxpayer-qingdao",
        kind: CallerKind::Taxpayer,
        label: "纳税人 · 一般纳税人（青岛市南）",
        sub: "91370202MA3DEMO02Y",
        name: "青岛海岸示例科技有限公司",
        office_code: QINGDAO_SHINAN.0,
        office_name: QINGDAO_SHINAN.1,
        tags: &["一般纳税人", "高新技术企业"],
        phone: "13800000002",
        groups: &[],
        role: None,
    },
    DemoIdentity {
        id: "taxpayer-person",
        kind: CallerKind::Taxpayer,
        label: "纳税人 · 自然人（济南历下）",
        sub: "370102199001010011",
        name: "张明",
        office_code: JINAN_LIXIA.0,
        office_name: JINAN_LIXIA.1,
        tags: &["自然人"],
        phone: "13800000003",
        groups: &[],
        role: None,
    },
    DemoIdentity {
        id: "agent-jinan",
        kind: CallerKind::Agent,
        label: "坐席 · 济南历下",
        sub: "A1001",
        name: "王税官",
        office_code: JINAN_LIXIA.0,
        office_name: JINAN_LIXIA.1,
        tags: &[],
        phone: "",
        groups: &["历下区综合咨询组"],
        role: Some(AgentRole::Agent),
    },
    DemoIdentity {
        id: "supervisor-jinan",
        kind: CallerKind::Agent,
        label: "班长 · 济南历下",
        sub: "A1002",
        name: "李班长",
        office_code: JINAN_LIXIA.0,
        office_name: JINAN_LIXIA.1,
        tags: &[],
        phone: "",
        groups: &["历下区综合咨询组"],
        role: Some(AgentRole::Supervisor),
    },
    DemoIdentity {
        id: "agent-qingdao",
        kind: CallerKind::Agent,
        label: "坐席 · 青岛市南",
        sub: "A2001",
        name: "赵税官",
        office_code: QINGDAO_SHINAN.0,
        office_name: QINGDAO_SHINAN.1,
        tags: &[],
        phone: "",
        groups: &["市南区综合咨询组"],
        role: Some(AgentRole::Agent),
    },
    DemoIdentity {
        id: "kb-editor",
        kind: CallerKind::Agent,
        label: "知识库编辑 · 省局",
        sub: "E0001",
        name: "陈编辑",
        office_code: PROVINCE.0,
        office_name: PROVINCE.1,
        tags: &[],
        phone: "",
        groups: &["知识库运营组"],
        role: Some(AgentRole::KbEditor),
    },
];

impl DemoIdentity {
    pub fn find(id: &str) -> Option<&'static DemoIdentity> {
        DEMO_IDENTITIES.iter().find(|d| d.id == id)
    }

    pub fn issuer(&self) -> &'static str {
        match self.kind {
            CallerKind::Taxpayer => DEV_TAXPAYER_ISSUER,
            CallerKind::Agent => DEV_STAFF_ISSUER,
        }
    }

    /// Claims for this identity, expiring `ttl_secs` after `now`.
    pub fn claims(&self, now: i64, ttl_secs: i64) -> TokenClaims {
        TokenClaims {
            iss: self.issuer().to_owned(),
            sub: self.sub.to_owned(),
            exp: now + ttl_secs,
            aud: None,
            name: self.name.to_owned(),
            office_code: self.office_code.to_owned(),
            office_name: self.office_name.to_owned(),
            tags: self.tags.iter().map(|s| (*s).to_owned()).collect(),
            phone: self.phone.to_owned(),
            groups: self.groups.iter().map(|s| (*s).to_owned()).collect(),
            role: self.role,
        }
    }
}

/// The two issuers the dev key signs for (keys are installed separately).
pub fn dev_issuers() -> Vec<IssuerConfig> {
    [(DEV_TAXPAYER_ISSUER, CallerKind::Taxpayer), (DEV_STAFF_ISSUER, CallerKind::Agent)]
        .into_iter()
        .map(|(issuer, kind)| IssuerConfig {
            issuer: issuer.into(),
            audience: String::new(),
            kind,
            jwks_path: None,
            jwks_url: None,
        })
        .collect()
}
