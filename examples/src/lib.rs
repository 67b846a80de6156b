//! Runnable examples of Serin live beside this crate as `[[example]]` targets; this library
//! holds what several of them share.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The name of the demo service binary of `serin-local`.
const DEMO: &str = "serin-demo-service";

/// The `serin-demo-service` binary: the path in `SERIN_DEMO_SERVICE` when set, else the one in
/// the target directory of the running program (its grandparent directory), as
/// [`demo_binary_in`] finds, checks or builds it there. The error says what could not be
/// found or built, and how to go on.
pub fn demo_binary() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("SERIN_DEMO_SERVICE") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the target directory")?;
    demo_binary_in(dir)
}

/// `serin-demo-service` in the cargo profile directory `dir` (`target/debug`), current with
/// the sources it is built from.
///
/// A binary that is there and newer than its sources ([`freshness`]) is used as it is,
/// without asking cargo: asking would build it again whenever the features it was built with
/// differ from `cargo build`'s, as they do after `cargo test --all-features`.
/// A missing one, or one older than a source (edited since: it would run the old code), is
/// built with cargo, in the program's own profile, into this target directory. When cargo
/// holds `dir` itself (its lock, `.cargo-lock`) — typically the `cargo test` or `cargo build`
/// that runs this program — a nested build would wait on that cargo forever, so a missing or
/// stale binary is then an error naming it, the changed source and the command that builds
/// it.
pub fn demo_binary_in(dir: &Path) -> Result<PathBuf, String> {
    let demo = dir.join(DEMO);
    let why = match freshness(&demo) {
        Freshness::Fresh => return Ok(demo),
        Freshness::Missing => Some(format!("{DEMO} is not in {}", dir.display())),
        Freshness::Empty => Some(format!(
            "{} is empty (a build cut off before it wrote the binary)",
            demo.display()
        )),
        Freshness::Stale(source) => Some(format!(
            "{} is older than {}, one of the sources it is built from: it would run the code \
             as it was before that change",
            demo.display(),
            source.display()
        )),
    };
    let release = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    if let Some(why) = &why
        && cargo_holds(dir)
    {
        return Err(format!(
            "{why}; cargo is working in {} (perhaps the very `cargo test` or `cargo build` that \
             runs this program), so it cannot be built from here without waiting on itself: build \
             it first with `cargo build -p serin-local --bin {DEMO}{release}`, or give the path \
             of one in SERIN_DEMO_SERVICE (the CLI: --demo-binary)",
            dir.display()
        ));
    }
    eprintln!("building {DEMO} ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", "serin-local", "--bin", DEMO])
        .arg("--manifest-path")
        .arg(&manifest);
    if let Some(target) = dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let built = cmd.status().is_ok_and(|s| s.success());
    // Cargo judges its own output by its records, not by what the file holds: an empty one
    // it left is still empty.
    let runnable = std::fs::metadata(&demo).is_ok_and(|m| m.is_file() && m.len() > 0);
    if !built || !runnable {
        return Err(format!(
            "could not build {} (`cargo build -p serin-local --bin {DEMO}{release}`){}",
            demo.display(),
            why.map(|w| format!(", needed as {w}")).unwrap_or_default()
        ));
    }
    Ok(demo)
}

/// Whether a binary is current with the sources cargo recorded it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// No such file.
    Missing,
    /// An empty file, however new: a build cut off before it wrote the binary (a linker
    /// killed, a full disk) leaves one newer than every source, and it runs nothing.
    Empty,
    /// Newer than every recorded source.
    Fresh,
    /// This source is newer than the binary, or is gone.
    Stale(PathBuf),
}

/// How `binary` stands against the sources listed in its dep-info file (`<binary>.d`, which
/// `cargo build` writes beside each binary it builds: `binary: source source ...`, spaces in
/// paths escaped as `\ `), or, for a binary without one (`cargo test` writes none), against
/// the workspace's sources (every crate's `src` and manifest, and `Cargo.lock`: a superset of
/// its own). Modification times are compared as cargo does: a source changed after the binary
/// was written means the binary no longer reflects it. An empty binary is never fresh.
pub fn freshness(binary: &Path) -> Freshness {
    freshness_as_of(binary, None)
}

/// [`freshness`], counting only the source changes made up to `cutoff` (all without one): a
/// program that must match another one built from the sources as they were then (a test and
/// the programs it runs) is not made stale by edits that came after.
pub fn freshness_as_of(binary: &Path, cutoff: Option<SystemTime>) -> Freshness {
    let Ok(meta) = std::fs::metadata(binary) else {
        return Freshness::Missing;
    };
    if meta.len() == 0 {
        return Freshness::Empty;
    }
    let Ok(built) = meta.modified() else {
        return Freshness::Missing;
    };
    let mut info = binary.as_os_str().to_owned();
    info.push(".d");
    let sources = match std::fs::read_to_string(PathBuf::from(info)) {
        Ok(text) => dep_info_sources(&text),
        Err(_) => workspace_sources(),
    };
    stale_source(built, &sources, cutoff)
}

/// `Stale` with the first of `sources` changed after `built` (or gone), else `Fresh`.
fn stale_source(built: SystemTime, sources: &[PathBuf], cutoff: Option<SystemTime>) -> Freshness {
    for source in sources {
        let unchanged = std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t <= built || cutoff.is_some_and(|c| t > c));
        if !unchanged {
            return Freshness::Stale(source.clone());
        }
    }
    Freshness::Fresh
}

/// The workspace's sources: `Cargo.lock`, and every file under each crate's `src` with its
/// manifest — what any of its binaries can be built from, apart from the registry's crates,
/// which `Cargo.lock` pins.
fn workspace_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = vec![root.join("Cargo.lock")];
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for c in crates.flatten() {
            let manifest = c.path().join("Cargo.toml");
            if manifest.is_file() {
                out.push(manifest);
                walk(&c.path().join("src"), &mut out);
            }
        }
    }
    out
}

/// The prerequisites of every rule of a Makefile-style dep-info text.
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        // The target ends at the first `: ` (a path's own colons are not followed by a space
        // on the platforms cargo writes this for, and `\ ` escapes a space in a path).
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut path = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    path.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !path.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut path)));
                    }
                }
                c => path.push(c),
            }
        }
        if !path.is_empty() {
            out.push(PathBuf::from(path));
        }
    }
    out
}

/// Whether a cargo holds the profile directory `dir` now (its build lock, `.cargo-lock`).
fn cargo_holds(dir: &Path) -> bool {
    match std::fs::File::open(dir.join(".cargo-lock")) {
        Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn age(path: &Path, by: Duration) {
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        file.set_modified(SystemTime::now() - by).expect("mtime");
    }

    #[test]
    fn dep_info_lists_every_source_with_escaped_spaces() {
        let text = "/t/debug/demo: /src/a.rs /my\\ src/b.rs\n\n/src/a.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            vec![PathBuf::from("/src/a.rs"), PathBuf::from("/my src/b.rs")]
        );
    }

    #[test]
    fn a_binary_is_stale_once_a_source_it_is_built_from_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(DEMO);
        assert_eq!(freshness(&bin), Freshness::Missing);
        std::fs::write(&bin, "binary").expect("write");
        // No dep-info: judged against the workspace's sources, all older than it.
        assert_eq!(freshness(&bin), Freshness::Fresh);
        let source = dir.path().join("main.rs");
        std::fs::write(&source, "fn main() {}").expect("write");
        let gone = dir.path().join("gone.rs");
        let info = dir.path().join(format!("{DEMO}.d"));
        std::fs::write(&info, format!("{}: {}\n", bin.display(), source.display())).expect("d");
        age(&source, Duration::from_secs(3600));
        assert_eq!(freshness(&bin), Freshness::Fresh);
        age(&bin, Duration::from_secs(7200));
        assert_eq!(freshness(&bin), Freshness::Stale(source.clone()));
        // Changed after the cutoff: not counted; before it: counted.
        let cutoff = SystemTime::now() - Duration::from_secs(5400);
        assert_eq!(freshness_as_of(&bin, Some(cutoff)), Freshness::Fresh);
        let cutoff = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(
            freshness_as_of(&bin, Some(cutoff)),
            Freshness::Stale(source.clone())
        );
        age(&bin, Duration::ZERO);
        std::fs::write(
            &info,
            format!(
                "{}: {} {}\n",
                bin.display(),
                source.display(),
                gone.display()
            ),
        )
        .expect("d");
        assert_eq!(freshness(&bin), Freshness::Stale(gone));
    }

    /// A binary without dep-info (one `cargo test` built) is judged against the workspace's
    /// sources, the demo service's own among them.
    #[test]
    fn a_binary_without_dep_info_is_compared_with_the_workspace_sources() {
        let sources = workspace_sources();
        assert!(
            sources
                .iter()
                .any(|p| p.ends_with("crates/local/src/bin/serin-demo-service.rs")),
            "{sources:?}"
        );
        assert!(sources.iter().any(|p| p.ends_with("Cargo.lock")));
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(DEMO);
        std::fs::write(&bin, "binary").expect("write");
        assert_eq!(freshness(&bin), Freshness::Fresh);
        age(&bin, Duration::from_secs(100 * 365 * 24 * 3600));
        assert!(matches!(freshness(&bin), Freshness::Stale(_)));
        // Changes after a cutoff before the binary are not counted.
        let long_ago = SystemTime::now() - Duration::from_secs(101 * 365 * 24 * 3600);
        assert_eq!(freshness_as_of(&bin, Some(long_ago)), Freshness::Fresh);
    }

    /// A build cut off (a linker killed, a full disk) can leave an empty binary newer than
    /// every source: it runs nothing, so it is not fresh, and is not used.
    #[test]
    fn an_empty_binary_is_never_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(DEMO);
        std::fs::write(&bin, "").expect("write");
        assert_eq!(freshness(&bin), Freshness::Empty);
        let lock = std::fs::File::create(dir.path().join(".cargo-lock")).expect("lock file");
        lock.lock().expect("lock");
        let e = demo_binary_in(dir.path()).expect_err("empty");
        assert!(e.contains("is empty") && e.contains("cargo build"), "{e}");
    }

    #[test]
    fn a_stale_binary_is_refused_while_cargo_holds_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(DEMO);
        let lock = std::fs::File::create(dir.path().join(".cargo-lock")).expect("lock file");
        lock.lock().expect("lock");
        // Missing: not built, as that would wait on the lock held.
        let e = demo_binary_in(dir.path()).expect_err("missing");
        assert!(
            e.contains("is not in") && e.contains("cargo build -p serin-local"),
            "{e}"
        );
        // Recorded sources, none newer: used.
        std::fs::write(&bin, "binary").expect("write");
        assert_eq!(demo_binary_in(dir.path()), Ok(bin.clone()));
        let source = dir.path().join("main.rs");
        std::fs::write(&source, "fn main() {}").expect("write");
        std::fs::write(
            dir.path().join(format!("{DEMO}.d")),
            format!("{}: {}\n", bin.display(), source.display()),
        )
        .expect("d");
        age(&source, Duration::from_secs(60));
        assert_eq!(demo_binary_in(dir.path()), Ok(bin.clone()));
        // A source edited since: refused, naming it.
        age(&bin, Duration::from_secs(3600));
        let e = demo_binary_in(dir.path()).expect_err("stale");
        assert!(
            e.contains(&source.display().to_string()) && e.contains("cargo is working"),
            "{e}"
        );
        drop(lock);
        assert!(!cargo_holds(dir.path()));
    }
}
