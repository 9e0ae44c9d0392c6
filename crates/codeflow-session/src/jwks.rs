//! A JWKS file (RFC 7517 key set, as identity providers publish it): public keys for tokens,
//! each selected by the token's `kid`. The file is read again when it changes (checked at
//! most once a second, at a handshake), so keys can be rotated without a restart; a file that
//! does not parse is logged and the keys read before are kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::Mutex;

/// How often at most the file's modification time is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One usable key of the set.
#[derive(Clone)]
pub struct JwksKey {
    /// The algorithm tokens signed with this key must name.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
    keys: Vec<(String, JwksKey)>,
}

/// The keys of a JWKS file, by `kid`.
pub struct Jwks {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("path", &self.path).finish()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The algorithm a key is for: its `alg`, or the one its type implies (RSA → RS256,
/// Ed25519 → EdDSA, P-256 → ES256, P-384 → ES384).
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return Algorithm::try_from(alg).ok();
    }
    use jsonwebtoken::jwk::EllipticCurve;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

/// Reads and checks a JWKS file: every key with a `kid`, public keys only (a symmetric `oct`
/// key in a file is refused: use `jwt_secret`).
pub fn read(path: &Path) -> Result<Vec<(String, JwksKey)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the JWKS file {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a JWKS (`{{\"keys\": [...]}}`): {e}",
            path.display()
        )
    })?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().ok_or_else(|| {
            format!(
                "{}: every key needs a `kid` (tokens select keys by it)",
                path.display()
            )
        })?;
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(format!(
                "{}: key `{kid}` is a shared secret (`oct`); a JWKS file holds public keys only (use jwt_secret for HS256)",
                path.display()
            ));
        }
        let algorithm = algorithm_of(jwk).ok_or_else(|| {
            format!(
                "{}: key `{kid}` has a type or `alg` this server does not accept",
                path.display()
            )
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("{}: key `{kid}`: {e}", path.display()))?;
        keys.push((kid, JwksKey { algorithm, key }));
    }
    if keys.is_empty() {
        return Err(format!("the JWKS file {} has no keys", path.display()));
    }
    Ok(keys)
}

impl Jwks {
    /// Reads the file now; start-up fails on a bad one.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        let keys = read(&path)?;
        Ok(Self {
            loaded: Mutex::new(Loaded {
                stamp: stamp(&path),
                checked: Instant::now(),
                keys,
            }),
            path,
        })
    }

    /// The key `kid` names, from the file as it is now.
    pub fn find(&self, kid: &str) -> Option<JwksKey> {
        let mut loaded = self.loaded.lock();
        if loaded.checked.elapsed() >= CHECK_EVERY {
            loaded.checked = Instant::now();
            let now = stamp(&self.path);
            if now != loaded.stamp {
                loaded.stamp = now;
                match read(&self.path) {
                    Ok(keys) => {
                        tracing::info!(file = %self.path.display(), keys = keys.len(), "JWKS file reloaded");
                        loaded.keys = keys;
                    }
                    Err(e) => {
                        tracing::warn!("{e}; keeping the keys read before");
                    }
                }
            }
        }
        loaded
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key.clone())
    }

    /// The algorithms of the keys it holds, for error messages.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = self
            .loaded
            .lock()
            .keys
            .iter()
            .map(|(_, k)| k.algorithm)
            .collect();
        algs.dedup();
        algs
    }
}
