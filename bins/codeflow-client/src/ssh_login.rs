//! SSH-key login (`--ssh-key`, `--ssh-agent`): on each new connection the relay asks the
//! server for a one-time challenge (`auth/challenge`), signs it as an SSHSIG signature in the
//! `codeflow` namespace — with a key file, or through the ssh-agent at `SSH_AUTH_SOCK` — and
//! sends the public key, the challenge and the signature in the `initialize` params
//! (`auth.sshKey`). `docs/protocol.md`, "SSH-key login".

use std::path::{Path, PathBuf};
use std::time::Duration;

use codeflow_transport::{Inbound, Message, Outbound};
use serde_json::{Value, json};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// What signs the login.
#[derive(Debug)]
pub enum LoginKey {
    /// A private key file.
    File(Box<PrivateKey>),
    /// An ssh-agent: its key `public`, or its first ed25519/RSA key.
    Agent {
        socket: PathBuf,
        public: Option<PublicKey>,
    },
}

impl LoginKey {
    /// From the command line: `--ssh-agent` (with `--ssh-key` naming the public key to use,
    /// optional) or `--ssh-key` alone (a private key file).
    pub fn from_flags(key: Option<&Path>, agent: bool) -> Result<Option<Self>, String> {
        if agent {
            let socket = std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .ok_or("--ssh-agent needs a running ssh-agent: SSH_AUTH_SOCK is not set")?;
            let public = match key {
                None => None,
                Some(path) => Some(read_public_key(path)?),
            };
            return Ok(Some(Self::Agent { socket, public }));
        }
        key.map(|path| load_key(path).map(|k| Self::File(Box::new(k))))
            .transpose()
    }

    /// Signs `message`: (the public key in OpenSSH form, the SSHSIG signature).
    async fn sign(&self, message: &[u8]) -> Result<(String, SshSig), String> {
        match self {
            Self::File(key) => {
                let public = key
                    .public_key()
                    .to_openssh()
                    .map_err(|e| format!("cannot encode the SSH public key: {e}"))?;
                Ok((public, sign(key, message)?))
            }
            Self::Agent { socket, public } => {
                let (socket, public, message) = (socket.clone(), public.clone(), message.to_vec());
                tokio::task::spawn_blocking(move || sign_with_agent(&socket, public, &message))
                    .await
                    .map_err(|e| format!("the ssh-agent task failed: {e}"))?
            }
        }
    }
}

/// Reads the public key `--ssh-key` names for `--ssh-agent`: the file itself when it is a
/// public key, else `<file>.pub`.
fn read_public_key(path: &Path) -> Result<PublicKey, String> {
    let read = |p: &Path| PublicKey::read_openssh_file(p);
    read(path)
        .or_else(|_| {
            let mut pub_path = path.as_os_str().to_owned();
            pub_path.push(".pub");
            read(Path::new(&pub_path))
        })
        .map_err(|e| {
            format!(
                "--ssh-key {} with --ssh-agent: neither it nor {}.pub is an OpenSSH public key ({e})",
                path.display(),
                path.display()
            )
        })
}

fn sign_with_agent(
    socket: &Path,
    wanted: Option<PublicKey>,
    message: &[u8],
) -> Result<(String, SshSig), String> {
    let agent_error = |e: &dyn std::fmt::Display| format!("ssh-agent at {}: {e}", socket.display());
    let mut client = ssh_agent_client_rs::Client::connect(socket).map_err(|e| agent_error(&e))?;
    // Plain keys only: an agent's certificates are not what authorized_keys lists.
    let identities: Vec<PublicKey> = client
        .list_all_identities()
        .map_err(|e| agent_error(&e))?
        .into_iter()
        .filter_map(|identity| match identity {
            ssh_agent_client_rs::Identity::PublicKey(key) => Some(key.into_owned()),
            ssh_agent_client_rs::Identity::Certificate(_) => None,
        })
        .collect();
    let usable = |k: &PublicKey| {
        matches!(
            k.algorithm(),
            ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::Rsa { .. }
        )
    };
    let key = match wanted {
        Some(wanted) => identities
            .into_iter()
            .find(|k| k.key_data() == wanted.key_data())
            .ok_or_else(|| {
                agent_error(&format!(
                    "it does not hold the key {} (`ssh-add` it)",
                    wanted.fingerprint(HashAlg::Sha256)
                ))
            })?,
        None => identities
            .into_iter()
            .find(usable)
            .ok_or_else(|| agent_error(&"it holds no ed25519 or RSA key (`ssh-add` one)"))?,
    };
    let signed =
        SshSig::signed_data(NAMESPACE, HashAlg::Sha512, message).map_err(|e| agent_error(&e))?;
    let signature = client
        .sign(key.clone(), &signed)
        .map_err(|e| agent_error(&format!("it refused to sign: {e}")))?;
    let sig = SshSig::new(
        key.key_data().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        signature,
    )
    .map_err(|e| agent_error(&e))?;
    let public = key
        .to_openssh()
        .map_err(|e| format!("cannot encode the SSH public key: {e}"))?;
    Ok((public, sig))
}

/// The SSHSIG namespace of a login signature (the server checks the same one).
pub const NAMESPACE: &str = "codeflow";

/// The id of the relay's own `auth/challenge` request.
const CHALLENGE_ID: &str = "r:challenge";

const TIMEOUT: Duration = Duration::from_secs(15);

/// Reads an OpenSSH private key file, refusing what the relay cannot use.
pub fn load_key(path: &Path) -> Result<PrivateKey, String> {
    let key = PrivateKey::read_openssh_file(path).map_err(|e| {
        format!(
            "--ssh-key {}: not an OpenSSH private key ({e}); pass the private key file (e.g. ~/.ssh/id_ed25519), not the .pub",
            path.display()
        )
    })?;
    if key.is_encrypted() {
        return Err(format!(
            "--ssh-key {}: the key is protected by a passphrase, which the relay cannot ask for; use a key without one for this relay (`ssh-keygen -t ed25519 -N ''`)",
            path.display()
        ));
    }
    match key.algorithm() {
        ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::Rsa { .. } => Ok(key),
        other => Err(format!(
            "--ssh-key {}: {other} keys are not supported; use an ed25519 or RSA key",
            path.display()
        )),
    }
}

/// An SSHSIG signature of `message` in the login namespace.
fn sign(key: &PrivateKey, message: &[u8]) -> Result<SshSig, String> {
    let failed = |e: &dyn std::fmt::Display| {
        format!("cannot sign the login challenge with the SSH key: {e}")
    };
    let ssh_key::private::KeypairData::Rsa(pair) = key.key_data() else {
        return key
            .sign(NAMESPACE, HashAlg::Sha512, message)
            .map_err(|e| failed(&e));
    };
    // ssh-key 0.6.7 builds the RSA private key with the first prime twice, which `rsa`
    // refuses; the key is built here from its components and signed with `rsa` (PKCS#1 v1.5,
    // SHA-512: `rsa-sha2-512`), then wrapped as SSHSIG by ssh-key.
    use rsa::signature::{SignatureEncoding, Signer};
    let big = |m: &ssh_key::Mpint| rsa::BigUint::try_from(m).map_err(|e| failed(&e));
    let private = rsa::RsaPrivateKey::from_components(
        big(&pair.public.n)?,
        big(&pair.public.e)?,
        big(&pair.private.d)?,
        vec![big(&pair.private.p)?, big(&pair.private.q)?],
    )
    .map_err(|e| failed(&e))?;
    let signed =
        SshSig::signed_data(NAMESPACE, HashAlg::Sha512, message).map_err(|e| failed(&e))?;
    let raw = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private)
        .try_sign(&signed)
        .map_err(|e| failed(&e))?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        raw.to_vec(),
    )
    .map_err(|e| failed(&e))?;
    SshSig::new(
        key.public_key().key_data().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        signature,
    )
    .map_err(|e| failed(&e))
}

/// The `auth` object of `initialize` for `challenge`, signed with `key`.
pub async fn answer(key: &LoginKey, challenge: &str) -> Result<Value, String> {
    let (public_key, signature) = key.sign(challenge.as_bytes()).await?;
    let signature = signature
        .to_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the login signature: {e}"))?;
    Ok(json!({"sshKey": {
        "publicKey": public_key,
        "challenge": challenge,
        "signature": signature,
    }}))
}

/// Asks the server on a fresh connection for a challenge and signs it: the `auth` object for
/// this connection's `initialize`.
pub async fn login(
    key: &LoginKey,
    outbound: &Outbound,
    inbound: &mut Inbound,
) -> Result<Value, String> {
    let id = json!(CHALLENGE_ID);
    outbound
        .send(&Message::request(id.clone(), "auth/challenge", json!({})))
        .map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(TIMEOUT, async {
        loop {
            match inbound.recv().await {
                Some(m @ (Message::Response { .. } | Message::Error { .. }))
                    if m.id() == Some(&id) =>
                {
                    return Some(m);
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .map_err(|_| "the server did not answer auth/challenge".to_owned())?
    .ok_or("the server closed the connection before answering auth/challenge")?;
    match reply {
        Message::Response { result, .. } => {
            let challenge = result
                .get("challenge")
                .and_then(Value::as_str)
                .ok_or("the server's auth/challenge answer has no challenge")?;
            answer(key, challenge).await
        }
        Message::Error { error, .. } => Err(format!(
            "the server does not offer SSH-key login: {}",
            error.message
        )),
        _ => Err("unexpected answer to auth/challenge".into()),
    }
}
