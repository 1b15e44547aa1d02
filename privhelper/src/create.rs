//! Create-only file writes ([`crate::ops::Plan::CreateFile`]): a file that must not
//! exist yet, such as the host's NVMe identity (`/etc/nvme/hostnqn`), which must
//! never change under existing connections.
//!
//! * the parent directory is opened `O_DIRECTORY|O_NOFOLLOW` (a symlink or a
//!   non-directory there is refused); when it is missing it is created, one level
//!   only, mode 0755 whatever the umask;
//! * the file is created relative to that directory with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, so anything already at the path (a file, a
//!   directory, a symlink, even a dangling one) is refused and left alone;
//! * its mode is set to 0644 with `fchmod` (umask-independent), the value written
//!   as given (no newline added), the file and the directory fsynced. If writing
//!   fails the new file is removed again: nothing is left half-written.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Mode of a created file.
pub const FILE_MODE: u32 = 0o644;
/// Mode of a created parent directory.
pub const DIR_MODE: u32 = 0o755;

/// Why a file was not created. Nothing was changed, except that a parent directory
/// made before an [`Io`] error stays. Messages name no path: the caller prefixes the
/// one it shows (the host path, not the one under a host root).
///
/// [`Io`]: CreateError::Io
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Something is already at the path: what it is (`a regular file`, `a symlink`…).
    #[error("exists ({0}) and is never replaced")]
    Exists(&'static str),
    /// The parent directory is not one: `is a symlink`, `is not a directory`.
    #[error("cannot be created: its parent {0}")]
    Parent(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Open directory `dir` without following a symlink at its last component.
fn open_dir(dir: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The parent directory of the file, created (one level, 0755) when missing.
fn parent_dir(parent: &Path) -> Result<OwnedFd, CreateError> {
    let refuse = CreateError::Parent;
    match open_dir(parent) {
        Ok(d) => return Ok(d),
        Err(Errno::ELOOP) => return Err(refuse("is a symlink")),
        Err(Errno::ENOTDIR) => {
            return Err(
                if std::fs::symlink_metadata(parent).is_ok_and(|m| m.file_type().is_symlink()) {
                    refuse("is a symlink")
                } else {
                    refuse("is not a directory")
                },
            );
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(io(e).into()),
    }
    let (Some(grand), Some(name)) = (parent.parent(), parent.file_name()) else {
        return Err(refuse("is missing"));
    };
    // The grandparent must exist: only one level is created.
    let g = nix::fcntl::open(
        grand,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let created = match mkdirat(&g, name, Mode::from_bits_truncate(DIR_MODE)) {
        Ok(()) => true,
        // Made by someone else in the meantime: used as it is, if it is a directory.
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(io(e).into()),
    };
    let d = match open_dir(parent) {
        Ok(d) => d,
        Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(refuse("is not a directory")),
        Err(e) => return Err(io(e).into()),
    };
    if created {
        // The umask may have taken bits away.
        fchmod(&d, Mode::from_bits_truncate(DIR_MODE)).map_err(io)?;
        File::from(g).sync_all()?;
    }
    Ok(d)
}

/// Create `path` holding exactly `value`, only if nothing is there (see the module
/// documentation).
pub fn create_new(path: &Path, value: &[u8]) -> Result<(), CreateError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no file name in the path",
        )
        .into());
    };
    let dir = parent_dir(parent)?;
    let fd = match openat(
        &dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(FILE_MODE),
    ) {
        Ok(fd) => fd,
        Err(Errno::EEXIST) => return Err(CreateError::Exists(describe_existing(path))),
        Err(e) => return Err(io(e).into()),
    };
    let mut f = File::from(fd);
    let written = fchmod(&f, Mode::from_bits_truncate(FILE_MODE))
        .map_err(io)
        .and_then(|()| f.write_all(value))
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
        return Err(e.into());
    }
    File::from(dir).sync_all()?;
    Ok(())
}

/// What is at `path`, for the refusal.
fn describe_existing(path: &Path) -> &'static str {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => "a symlink",
        Ok(m) if m.is_dir() => "a directory",
        Ok(m) if m.is_file() => "a regular file",
        Ok(_) => "not a regular file",
        Err(_) => "gone again",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_file_and_parent_with_fixed_modes_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let file = etc.join("nvme/hostnqn");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o077) };
        let r = create_new(&file, b"nqn.2014-08.org.example:h");
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        r.unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"nqn.2014-08.org.example:h");
        assert_eq!(mode(&file), 0o644);
        assert_eq!(mode(&etc.join("nvme")), 0o755);
        // An existing parent keeps its mode; a second file is created in it.
        std::fs::set_permissions(etc.join("nvme"), std::fs::Permissions::from_mode(0o700)).unwrap();
        create_new(&etc.join("nvme/hostid"), b"id").unwrap();
        assert_eq!(mode(&etc.join("nvme")), 0o700);
        assert_eq!(std::fs::read(etc.join("nvme/hostid")).unwrap(), b"id");
    }

    #[test]
    fn never_replaces_anything() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("nvme");
        std::fs::create_dir(&d).unwrap();
        let file = d.join("hostnqn");
        std::fs::write(&file, "old").unwrap();
        let e = create_new(&file, b"new").unwrap_err();
        assert!(matches!(e, CreateError::Exists(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "exists (a regular file) and is never replaced"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");
        // A symlink (even a dangling one) is never followed or replaced.
        let target = t.path().join("target");
        let link = d.join("hostid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = create_new(&link, b"x").unwrap_err();
        assert!(e.to_string().contains("(a symlink)"), "{e}");
        assert!(!target.exists());
        std::fs::write(&target, "kept").unwrap();
        assert!(matches!(
            create_new(&link, b"x"),
            Err(CreateError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        std::fs::create_dir(d.join("dir")).unwrap();
        let e = create_new(&d.join("dir"), b"x").unwrap_err();
        assert!(e.to_string().contains("(a directory)"), "{e}");
    }

    #[test]
    fn parent_must_be_a_real_directory_one_level_deep() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        let link = t.path().join("etc/nvme");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let e = create_new(&link.join("hostnqn"), b"x").unwrap_err();
        assert!(matches!(e, CreateError::Parent(_)), "{e:?}");
        assert_eq!(e.to_string(), "cannot be created: its parent is a symlink");
        assert!(!elsewhere.join("hostnqn").exists());
        // A dangling symlink as the parent is not replaced by a directory either.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(t.path().join("gone"), &link).unwrap();
        let e = create_new(&link.join("hostnqn"), b"x").unwrap_err();
        assert!(matches!(e, CreateError::Parent(_)), "{e:?}");
        assert!(!t.path().join("gone").exists());
        std::fs::remove_file(&link).unwrap();
        std::fs::write(&link, "").unwrap();
        let e = create_new(&link.join("hostnqn"), b"x").unwrap_err();
        assert!(e.to_string().ends_with("is not a directory"), "{e}");
        // Only the last directory level is created.
        let deep = t.path().join("a/b/hostnqn");
        assert!(matches!(create_new(&deep, b"x"), Err(CreateError::Io(_))));
        assert!(!t.path().join("a").exists());
    }
}
