//! The operations center's accounts: who may log in to the dashboard and the API, with which
//! role, and their password hashes (argon2id, PHC strings), kept in a TOML file
//! (`api.users_file`) that `dumpwatch users` edits and the service re-reads when it changes.
//!
//! ```toml
//! [[users]]
//! name = "zhang.wei"            # what they type to log in
//! display_name = "张伟"          # shown on reviews (optional)
//! role = "operator"              # viewer | operator | admin
//! password = "$argon2id$v=19$m=7168,t=5,p=1$..."
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// What an account may do. Each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: cameras, pictures, incidents, evidence, deliveries.
    Viewer,
    /// Reads, and reviews incidents (acknowledge, dismiss).
    Operator,
    /// Everything: also requeues dead deliveries and reloads the configuration.
    Admin,
}

impl Role {
    /// The name used in the users file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "{other:?} is not a role: viewer, operator or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name: 1–64 characters of `A-Z a-z 0-9 _ - .`, unique in the file.
    pub name: String,
    /// Name shown on reviews and in the dashboard (any text, e.g. Chinese). Default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What the account may do.
    pub role: Role,
    /// The password's argon2 hash as a PHC string (`$argon2id$...`), written by `dumpwatch users`.
    pub password: String,
}

impl User {
    /// The name shown for this account.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}

/// The users file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The accounts.
    #[serde(default)]
    pub users: Vec<User>,
}

/// A users file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The file cannot be read or written.
    #[error("users file {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is not a valid users file.
    #[error("users file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which entry and what is wrong with it.
        message: String,
    },
    /// A password that cannot be hashed or is too weak.
    #[error("{0}")]
    Password(String),
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

impl UsersFile {
    /// Reads and checks `path`. A missing file is an error (the service was told to use it).
    pub fn load(path: &Path) -> Result<UsersFile, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|e| AccountsError::Io {
            path: path.to_owned(),
            message: format!("cannot read it: {e} (create it with `dumpwatch users add`)"),
        })?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| AccountsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        file.check().map_err(|message| AccountsError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(file)
    }

    /// Reads `path`, or an empty file when it does not exist yet (for `dumpwatch users add`).
    pub fn load_or_empty(path: &Path) -> Result<UsersFile, AccountsError> {
        if path.exists() {
            UsersFile::load(path)
        } else {
            Ok(UsersFile::default())
        }
    }

    /// Every problem of the entries, the first one named by its index and login name.
    fn check(&self) -> Result<(), String> {
        for (i, u) in self.users.iter().enumerate() {
            let at = format!("users[{i}] ({:?})", u.name);
            valid_name(&u.name).map_err(|e| format!("{at}.name: {e}"))?;
            if self.users[..i].iter().any(|o| o.name == u.name) {
                return Err(format!("{at}.name: used twice"));
            }
            if u.display_name
                .as_ref()
                .is_some_and(|d| d.chars().count() > 64)
            {
                return Err(format!("{at}.display_name: longer than 64 characters"));
            }
            PasswordHash::new(&u.password).map_err(|e| {
                format!("{at}.password: not a password hash ({e}); set it with `dumpwatch users add {} --replace`", u.name)
            })?;
        }
        Ok(())
    }

    /// The account called `name`.
    pub fn find(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Writes the file to `path` atomically (a temporary file renamed over it), readable by its
    /// owner only: the hashes are not secret like passwords, but should not be handed out.
    pub fn save(&self, path: &Path) -> Result<(), AccountsError> {
        let io = |e: std::io::Error| AccountsError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let text = toml::to_string_pretty(self).map_err(|e| AccountsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Checks a login name: 1–64 characters of `A-Z a-z 0-9 _ - .`.
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!("{c:?} is not allowed: use A-Z a-z 0-9 _ - ."));
    }
    Ok(())
}

/// The argon2id settings of new hashes: 7 MiB, 5 passes, one lane (one of OWASP's equivalent
/// choices; light on memory, since the service shares its box with 77 cameras). A hash records
/// its own settings, so older hashes still verify if these change.
fn hasher() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a new password (at least [`MIN_PASSWORD_CHARS`] characters).
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountsError::Password(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| AccountsError::Password(format!("cannot make a salt: {e}")))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Password(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC `hash` (false for a hash that cannot be read).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of no one's password: verified against when the name is unknown, so that a wrong name
/// takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not anyone's password").expect("hashing the decoy"))
}

/// The users file as last read, re-read when its modification time changes.
pub struct Accounts {
    path: PathBuf,
    cached: std::sync::RwLock<(Option<SystemTime>, std::sync::Arc<UsersFile>)>,
}

impl Accounts {
    /// Reads `path` now: a file that cannot be used stops the start-up with its reason.
    pub fn open(path: &Path) -> Result<Accounts, AccountsError> {
        let file = UsersFile::load(path)?;
        Ok(Accounts {
            path: path.to_owned(),
            cached: std::sync::RwLock::new((modified(path), std::sync::Arc::new(file))),
        })
    }

    /// The accounts now: re-read if the file changed since; a changed file that cannot be used
    /// keeps the accounts as they were (logged).
    pub fn current(&self) -> std::sync::Arc<UsersFile> {
        let now = modified(&self.path);
        {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if cached.0 == now {
                return cached.1.clone();
            }
        }
        let mut cached = self.cached.write().unwrap_or_else(|e| e.into_inner());
        if cached.0 != now {
            match UsersFile::load(&self.path) {
                Ok(file) => {
                    tracing::info!(path = %self.path.display(), users = file.users.len(), "users file re-read");
                    *cached = (now, std::sync::Arc::new(file));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the users file changed but cannot be used: the accounts stay as they were");
                    cached.0 = now;
                }
            }
        }
        cached.1.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_and_no_other() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn the_users_file_round_trips_and_names_its_problems() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut file = UsersFile::default();
        file.users.push(User {
            name: "zhang.wei".into(),
            display_name: Some("张伟".into()),
            role: Role::Operator,
            password: hash_password("12345678").unwrap(),
        });
        file.save(&path).unwrap();
        let read = UsersFile::load(&path).unwrap();
        assert_eq!(read, file);
        assert_eq!(read.find("zhang.wei").unwrap().shown_name(), "张伟");

        std::fs::write(
            &path,
            "[[users]]\nname = \"a b\"\nrole = \"viewer\"\npassword = \"x\"\n",
        )
        .unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("users[0]") && e.contains("name"), "{e}");
        std::fs::write(
            &path,
            "[[users]]\nname = \"ab\"\nrole = \"boss\"\npassword = \"x\"\n",
        )
        .unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("boss") || e.contains("role"), "{e}");
        std::fs::write(
            &path,
            "[[users]]\nname = \"ab\"\nrole = \"viewer\"\npassword = \"x\"\n",
        )
        .unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("users[0]") && e.contains("password"), "{e}");
    }

    #[test]
    fn accounts_follow_the_file_and_keep_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let user = |name: &str, role| User {
            name: name.into(),
            display_name: None,
            role,
            password: hash_password("12345678").unwrap(),
        };
        UsersFile {
            users: vec![user("a", Role::Viewer)],
        }
        .save(&path)
        .unwrap();
        let accounts = Accounts::open(&path).unwrap();
        assert_eq!(accounts.current().find("a").unwrap().role, Role::Viewer);
        // A later modification time (some file systems keep whole seconds).
        std::thread::sleep(std::time::Duration::from_millis(1100));
        UsersFile {
            users: vec![user("a", Role::Admin), user("b", Role::Operator)],
        }
        .save(&path)
        .unwrap();
        assert_eq!(accounts.current().find("a").unwrap().role, Role::Admin);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(&path, "not toml [").unwrap();
        assert_eq!(accounts.current().users.len(), 2);
    }
}
