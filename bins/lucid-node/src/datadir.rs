//! The data directory: `node.key` (Ed25519 seed, 64 hex, mode 0600), `admin.token` (32 random
//! bytes as hex, 0600), `lucid.toml`, `tor/`, and the lock file that keeps a second instance out.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lucid_core::NodeKey;
use zeroize::Zeroizing;

/// File name of the identity key.
pub(crate) const KEY_FILE: &str = "node.key";
/// File name of the admin token.
pub(crate) const TOKEN_FILE: &str = "admin.token";
/// File name of the lock file.
pub(crate) const LOCK_FILE: &str = "lucid.lock";

fn random_bytes<const N: usize>() -> anyhow::Result<Zeroizing<[u8; N]>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut_slice())
        .map_err(|e| anyhow::anyhow!("the operating system gave no randomness: {e}"))?;
    Ok(bytes)
}

fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// What `init` created.
pub(crate) struct Initialized {
    pub(crate) node_id: lucid_core::NodeId,
}

/// Creates the data directory with a new identity, admin token and commented configuration.
/// Refuses to overwrite an existing key.
pub(crate) fn init(data_dir: &Path, config_text: &str) -> anyhow::Result<Initialized> {
    let key_path = data_dir.join(KEY_FILE);
    if key_path.exists() {
        anyhow::bail!(
            "{} already exists; refusing to replace the node's identity",
            key_path.display()
        );
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", data_dir.display()))?;
    fs::create_dir_all(data_dir.join("tor")).context("creating tor/")?;
    fs::set_permissions(data_dir.join("tor"), fs::Permissions::from_mode(0o700))
        .context("restricting tor/")?;
    let seed = random_bytes::<32>()?;
    let key = NodeKey::from_seed(&seed);
    write_secret(&key_path, &format!("{}\n", &*key.seed_hex()))?;
    let token_path = data_dir.join(TOKEN_FILE);
    if !token_path.exists() {
        let token = random_bytes::<32>()?;
        write_secret(&token_path, &format!("{}\n", lucid_core::ids::to_hex(token.as_slice())))?;
    }
    let config_path = crate::config::default_path(data_dir);
    if !config_path.exists() {
        fs::write(&config_path, config_text)
            .with_context(|| format!("writing {}", config_path.display()))?;
    }
    Ok(Initialized { node_id: key.node_id() })
}

/// Reads a secret file, refusing one that group or others may read.
pub(crate) fn read_secret(path: &Path) -> anyhow::Result<String> {
    let metadata = fs::metadata(path)
        .with_context(|| format!("reading {} (run `lucid-node init` first)", path.display()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} has mode {mode:o}; it must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Loads the node's identity key.
pub(crate) fn load_key(data_dir: &Path) -> anyhow::Result<NodeKey> {
    let path = data_dir.join(KEY_FILE);
    let text = Zeroizing::new(read_secret(&path)?);
    NodeKey::from_seed_hex(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid node key: {e}", path.display()))
}

/// Loads the admin token file (mode and shape checked); it guards the API's mutations.
pub(crate) fn load_token(data_dir: &Path) -> anyhow::Result<lucid_daemon::AdminToken> {
    let text = read_token(data_dir)?;
    lucid_daemon::AdminToken::new(&text).ok_or_else(|| {
        anyhow::anyhow!("{}: the admin token is empty", data_dir.join(TOKEN_FILE).display())
    })
}

/// Reads the admin token's text (mode and shape checked), for a client that must present it.
pub(crate) fn read_token(data_dir: &Path) -> anyhow::Result<Zeroizing<String>> {
    let path = data_dir.join(TOKEN_FILE);
    let text = Zeroizing::new(read_secret(&path)?);
    let token = text.trim();
    if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "{}: the admin token must be at least 32 printable characters",
            path.display()
        );
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// The lock that keeps a second instance off this data directory; released when dropped.
pub(crate) struct DataDirLock {
    _file: File,
    _path: PathBuf,
}

/// Takes the data directory's lock, or fails if another instance holds it.
pub(crate) fn lock(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file, _path: path }),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("another lucid-node is running on {}", data_dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}
