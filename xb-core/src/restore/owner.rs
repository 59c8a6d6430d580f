//! Who owns the restored files.
//!
//! A server refuses a datadir it cannot write, and a restore usually runs
//! as root while the server runs as `mysql`. So when run as root, every
//! file and directory the restore creates is given to, in this order:
//! 1. `--chown USER`;
//! 2. the `user=` of the option file's server groups (the account the
//!    server switches to when started as root);
//! 3. the owner of the datadir, or of the nearest directory above it that
//!    exists (so a restore into `/var/lib/mysql` created by the package
//!    keeps the package's owner).
//!
//! Run as another user, the files are that user's; `--chown` of anyone
//! else is refused before anything is written. Users are looked up in
//! `/etc/passwd`, then through `getent passwd` (NSS: LDAP and the like).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::error::RestoreError;

/// A user and group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The process's effective user id: `/proc/self` belongs to it.
fn euid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `name`'s ids from a `passwd(5)` text.
fn from_passwd(text: &str, name: &str) -> Option<Owner> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(Owner { uid, gid })
    })
}

/// Looks `name` up (see the module docs).
fn lookup(name: &str) -> Option<Owner> {
    if let Some(o) = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| from_passwd(&t, name))
    {
        return Some(o);
    }
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| from_passwd(&String::from_utf8_lossy(&out.stdout), name))?
}

/// The owner the files get (see the module docs): `None` leaves them the
/// process's.
///
/// # Errors
/// [`RestoreError::UnknownUser`] for a name no lookup knows,
/// [`RestoreError::ChownNeedsRoot`] for `--chown` of another user by a
/// user that is not root.
pub fn choose(
    chown: Option<&str>,
    file_user: Option<&str>,
    datadir: &Path,
) -> Result<Option<Owner>, RestoreError> {
    let known = |user: &str| {
        lookup(user).ok_or_else(|| RestoreError::UnknownUser {
            user: user.to_string(),
        })
    };
    let root = euid() == Some(0);
    if !root {
        if let Some(user) = chown {
            let o = known(user)?;
            if Some(o.uid) != euid() {
                return Err(RestoreError::ChownNeedsRoot {
                    user: user.to_string(),
                });
            }
        }
        return Ok(None);
    }
    if let Some(user) = chown.or(file_user) {
        return known(user).map(Some);
    }
    let existing = datadir.ancestors().find(|d| d.exists());
    Ok(existing
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| Owner {
            uid: m.uid(),
            gid: m.gid(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_ids() {
        let t = "root:x:0:0:root:/root:/bin/bash\nmysql:x:101:102::/nonexistent:/bin/false\n";
        assert_eq!(from_passwd(t, "mysql"), Some(Owner { uid: 101, gid: 102 }));
        assert_eq!(from_passwd(t, "mysq"), None);
        assert_eq!(from_passwd("bad:x:y:z\n", "bad"), None);
    }

    #[test]
    fn an_unknown_user_is_refused() {
        let e = choose(Some("no-such-user-xb"), None, Path::new("/nonexistent/d")).unwrap_err();
        assert!(matches!(e, RestoreError::UnknownUser { .. }), "{e}");
        assert_eq!(e.code(), 42);
        assert!(choose(None, Some("root"), Path::new("/")).is_ok());
    }
}
