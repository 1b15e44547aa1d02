//! Helpers shared by the integration tests: where the workspace and its build are.

use std::path::{Path, PathBuf};

/// The workspace root (the `tests/` package sits directly in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory, honouring CARGO_TARGET_DIR.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        }
        None => repo_root().join("target"),
    }
}

/// Build with cargo from the workspace root (`args` after `cargo build`), failing the
/// test with cargo's output when the build fails.
pub fn cargo_build(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(repo_root())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
