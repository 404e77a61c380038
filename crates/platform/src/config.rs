//! Layered configuration: serde defaults → `config/<service>.toml` (or `--config`) →
//! environment `ZHENGNA_<SERVICE>__SECTION__KEY` → `--set section.key=value` flags.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StartupError;

/// Flags every zhengna binary accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML config file; defaults to `config/<service>.toml` when that file exists.
    #[arg(long, env = "ZHENGNA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Override one key, e.g. `--set server.listen=0.0.0.0:50051`; may repeat.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

thread_local! {
    /// Set only while the defaults layer is serialised, so secrets keep their value there.
    static REVEAL_SECRETS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `T::default()` as a figment value, secrets included.
fn defaults_of<T: Serialize + Default>() -> Result<figment::value::Value, StartupError> {
    REVEAL_SECRETS.with(|r| r.set(true));
    let value = figment::value::Value::serialize(T::default());
    REVEAL_SECRETS.with(|r| r.set(false));
    value.map_err(|e| StartupError::Config(e.to_string()))
}

/// Loads the configuration of `service` from all layers. The service's own defaults are the
/// bottom layer, so overriding one key keeps its siblings' service defaults.
pub fn load<T>(service: &str, args: &CommonArgs) -> Result<T, StartupError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(defaults_of::<T>()?));
    match &args.config {
        Some(path) => {
            if !path.exists() {
                return Err(StartupError::Config(format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        None => {
            let default = PathBuf::from(format!("config/{service}.toml"));
            if default.exists() {
                figment = figment.merge(Toml::file(default));
            }
        }
    }
    let prefix = format!("ZHENGNA_{}__", service.to_uppercase());
    figment = figment.merge(Env::prefixed(&prefix).split("__"));
    for kv in &args.overrides {
        let (key, value) =
            kv.split_once('=').ok_or_else(|| StartupError::Config(format!("--set expects KEY=VALUE, got `{kv}`")))?;
        let value: figment::value::Value =
            value.parse().map_err(|e| StartupError::Config(format!("--set {key}: {e}")))?;
        figment = figment.merge(Serialized::default(key.trim(), value));
    }
    figment.extract().map_err(|e| StartupError::Config(e.to_string()))
}

/// Renders a configuration as TOML for `--dump-config`.
pub fn dump<T: Serialize>(config: &T) -> Result<String, StartupError> {
    toml::to_string_pretty(config).map_err(|e| StartupError::Config(e.to_string()))
}

/// A secret string: deserialised from config, never printed. Serialises as `"<redacted>"`
/// so `--dump-config` output is safe to paste into a ticket.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() || REVEAL_SECRETS.with(|r| r.get()) {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str("<redacted>")
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq)]
    #[serde(default)]
    struct Cfg {
        server: Server,
        secret: Secret,
    }
    #[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
    #[serde(default)]
    struct Server {
        listen: String,
        grace_secs: u64,
    }
    impl Default for Server {
        fn default() -> Self {
            Self { listen: "127.0.0.1:1".into(), grace_secs: 5 }
        }
    }
    impl PartialEq for Secret {
        fn eq(&self, o: &Self) -> bool {
            self.0 == o.0
        }
    }

    #[test]
    fn flags_override_defaults_and_secrets_are_redacted() {
        let args =
            CommonArgs { overrides: vec!["server.grace_secs=9".into(), "secret=s3cr3t".into()], ..Default::default() };
        let cfg: Cfg = load("cfgtest", &args).expect("load");
        assert_eq!(cfg.server.grace_secs, 9);
        assert_eq!(cfg.server.listen, "127.0.0.1:1");
        assert_eq!(cfg.secret.expose(), "s3cr3t");
        let dumped = dump(&cfg).expect("dump");
        assert!(dumped.contains("<redacted>"), "{dumped}");
        assert!(!dumped.contains("s3cr3t"));
    }

    #[derive(Debug, Serialize, serde::Deserialize)]
    #[serde(default)]
    struct WithSecretDefault {
        url: Secret,
    }
    impl Default for WithSecretDefault {
        fn default() -> Self {
            Self { url: Secret::new("postgres://localhost/db") }
        }
    }

    #[test]
    fn overriding_one_key_keeps_the_service_defaults_of_its_siblings() {
        let args = CommonArgs { overrides: vec!["server.grace_secs=1".into()], ..Default::default() };
        #[derive(Debug, Serialize, serde::Deserialize)]
        #[serde(default)]
        struct Svc {
            server: Server,
        }
        impl Default for Svc {
            fn default() -> Self {
                Self { server: Server { listen: "127.0.0.1:7063".into(), grace_secs: 10 } }
            }
        }
        let cfg: Svc = load("cfgtest", &args).expect("load");
        assert_eq!(cfg.server.listen, "127.0.0.1:7063");
        assert_eq!(cfg.server.grace_secs, 1);
    }

    #[test]
    fn secret_defaults_survive_loading() {
        let cfg: WithSecretDefault = load("cfgtest", &CommonArgs::default()).expect("load");
        assert_eq!(cfg.url.expose(), "postgres://localhost/db");
    }

    #[test]
    fn bad_override_is_an_error() {
        let args = CommonArgs { overrides: vec!["novalue".into()], ..Default::default() };
        assert!(load::<Cfg>("cfgtest", &args).is_err());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let args = CommonArgs { config: Some("/nonexistent/x.toml".into()), ..Default::default() };
        assert!(load::<Cfg>("cfgtest", &args).is_err());
    }
}
