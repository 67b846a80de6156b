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
/// A binary that is there and newer than every source file cargo recorded for it (its
/// dep-info file, `serin-demo-service.d`) is used as it is, without asking cargo. A missing
/// one, or one older than a source (edited since: it would run the old code), is built with
/// cargo, in the program's own profile, into this target directory. When cargo holds `dir`
/// itself (its lock, `.cargo-lock`) — typically the `cargo test` or `cargo build` that runs
/// this program — a nested build would wait on that cargo forever, so a missing or stale
/// binary is then an error naming it, the changed source and the command that builds it; a
/// binary whose sources cargo did not record is used as it is, as nothing says it is stale.
pub fn demo_binary_in(dir: &Path) -> Result<PathBuf, String> {
    let demo = dir.join(DEMO);
    let why = match freshness(&demo) {
        Freshness::Fresh => return Ok(demo),
        Freshness::Unknown if cargo_holds(dir) => return Ok(demo),
        Freshness::Unknown => None,
        Freshness::Missing => Some(format!("{DEMO} is not in {}", dir.display())),
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
    if !built || !demo.is_file() {
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
    /// Newer than every recorded source.
    Fresh,
    /// This recorded source is newer than the binary, or is gone.
    Stale(PathBuf),
    /// No dep-info file beside it (or one that cannot be read): nothing to compare with.
    Unknown,
}

/// How `binary` stands against the sources listed in its dep-info file (`<binary>.d`, which
/// cargo writes beside each binary it builds: `binary: source source ...`, spaces in paths
/// escaped as `\ `). Modification times are compared as cargo does: a source changed after
/// the binary was written means the binary no longer reflects it.
pub fn freshness(binary: &Path) -> Freshness {
    freshness_as_of(binary, None)
}

/// [`freshness`], counting only the source changes made up to `cutoff` (all without one): a
/// program that must match another one built from the sources as they were then (a test and
/// the programs it runs) is not made stale by edits that came after.
pub fn freshness_as_of(binary: &Path, cutoff: Option<SystemTime>) -> Freshness {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return Freshness::Missing;
    };
    let mut info = binary.as_os_str().to_owned();
    info.push(".d");
    let Ok(text) = std::fs::read_to_string(PathBuf::from(info)) else {
        return Freshness::Unknown;
    };
    for source in dep_info_sources(&text) {
        let unchanged = std::fs::metadata(&source)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t <= built || cutoff.is_some_and(|c| t > c));
        if !unchanged {
            return Freshness::Stale(source);
        }
    }
    Freshness::Fresh
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
        assert_eq!(freshness(&bin), Freshness::Unknown);
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
