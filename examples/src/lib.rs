//! Runnable examples of Serin live beside this crate as `[[example]]` targets; this library
//! holds what several of them share.

use std::path::PathBuf;

/// The `serin-demo-service` binary: the path in `SERIN_DEMO_SERVICE` when set, else the one in
/// the target directory of the running program (its grandparent directory), built there with
/// cargo, in the program's own profile, when missing. The error says what could not be found
/// or built.
pub fn demo_binary() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("SERIN_DEMO_SERVICE") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the target directory")?;
    let demo = dir.join("serin-demo-service");
    if demo.is_file() {
        return Ok(demo);
    }
    eprintln!("building serin-demo-service ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "serin-local",
        "--bin",
        "serin-demo-service",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let built = cmd.status().is_ok_and(|s| s.success());
    if !built || !demo.is_file() {
        return Err(format!("could not build {}", demo.display()));
    }
    Ok(demo)
}
