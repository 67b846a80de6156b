//! Copying a directory tree while hashing it, and the manifest that records what was copied.
//!
//! The functions here block (std::fs); providers run them on tokio's blocking pool.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::durable;

/// What failed while copying or reading a tree: the path and what went wrong there.
#[derive(Debug)]
pub(crate) struct TreeError {
    pub(crate) path: PathBuf,
    pub(crate) reason: String,
}

impl TreeError {
    /// The copy into `path` stopped because it was cancelled.
    fn cancelled(path: &Path) -> Self {
        TreeError {
            path: path.to_owned(),
            reason: "the copy was cancelled".into(),
        }
    }
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.path.display(), self.reason)
    }
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |e| TreeError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// One entry of a tree, by its path relative to the tree's root (`.` for the root itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub(crate) path: String,
    #[serde(flatten)]
    pub(crate) kind: EntryKind,
}

/// A directory, a regular file or a symbolic link (kept as a link, never followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum EntryKind {
    /// A directory with its permission bits.
    Dir { mode: u32 },
    /// A regular file with its permission bits, size and SHA-256.
    File {
        mode: u32,
        size: u64,
        sha256: String,
    },
    /// A symbolic link and where it points.
    Symlink { target: String },
}

/// Every entry of a tree, in a fixed order (depth first, names sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) entries: Vec<Entry>,
}

impl Manifest {
    /// The bytes of all regular files.
    pub(crate) fn size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }

    /// The SHA-256 of the manifest's canonical JSON: one checksum for the whole tree.
    pub(crate) fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex(&Sha256::digest(&json))
    }

    /// Describes how `actual` differs from `self`, at most `limit` differences; empty when equal.
    pub(crate) fn differences(&self, actual: &Manifest, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut expected = self.entries.iter().peekable();
        let mut found = actual.entries.iter().peekable();
        while out.len() < limit {
            match (expected.peek(), found.peek()) {
                (None, None) => break,
                (Some(e), None) => {
                    out.push(format!("`{}` is missing", e.path));
                    expected.next();
                }
                (None, Some(f)) => {
                    out.push(format!("`{}` was not in the backup", f.path));
                    found.next();
                }
                (Some(e), Some(f)) if e.path == f.path => {
                    if e.kind != f.kind {
                        out.push(format!(
                            "`{}` differs: {} in the backup, {} restored",
                            e.path,
                            describe(&e.kind),
                            describe(&f.kind)
                        ));
                    }
                    expected.next();
                    found.next();
                }
                (Some(e), Some(f)) => {
                    if order_key(&e.path) < order_key(&f.path) {
                        out.push(format!("`{}` is missing", e.path));
                        expected.next();
                    } else {
                        out.push(format!("`{}` was not in the backup", f.path));
                        found.next();
                    }
                }
            }
        }
        out
    }
}

/// A path's place in a manifest's order (depth first, names sorted): its names compared one
/// by one, so that a directory's entries all come before its next sibling (`a/x` before `a-b`,
/// though `-` sorts before `/`), and the root (`.`) first.
fn order_key(path: &str) -> Vec<&str> {
    if path == "." {
        Vec::new()
    } else {
        path.split('/').collect()
    }
}

fn describe(kind: &EntryKind) -> String {
    match kind {
        EntryKind::Dir { mode } => format!("directory (mode {mode:o})"),
        EntryKind::File { mode, size, sha256 } => {
            format!(
                "file of {size} bytes (mode {mode:o}, sha256 {})",
                sha256.get(..12).unwrap_or(sha256)
            )
        }
        EntryKind::Symlink { target } => format!("symlink to `{target}`"),
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Copies the tree at `from` to `to` (which must not exist), keeping relative paths, permission
/// bits and symlinks as symlinks; returns the manifest of what was read. Sockets, FIFOs and
/// devices are refused: they are not state that a copy can keep.
///
/// Every file and directory of the copy is synced before it returns, so the copy is on disk
/// but for its own name (the caller syncs the directory holding `to`). `cancelled` is read
/// before each entry and each block: once it is set, the copy stops with an error and leaves
/// what it wrote for the caller to remove.
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    cancelled: &AtomicBool,
) -> Result<Manifest, TreeError> {
    let meta = fs::symlink_metadata(from).map_err(at(from))?;
    if !meta.is_dir() {
        return Err(TreeError {
            path: from.to_owned(),
            reason: "is not a directory".into(),
        });
    }
    let mut manifest = Manifest::default();
    copy_dir(from, to, ".", &mut manifest, cancelled)?;
    Ok(manifest)
}

fn mode_of(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &str,
    manifest: &mut Manifest,
    cancelled: &AtomicBool,
) -> Result<(), TreeError> {
    let meta = fs::symlink_metadata(from).map_err(at(from))?;
    let mode = mode_of(&meta);
    fs::create_dir(to).map_err(at(to))?;
    // Opened while still writable and readable, synced once its mode is set: a directory
    // whose mode forbids reading could not be opened later.
    let dir = fs::File::open(to).map_err(at(to))?;
    manifest.entries.push(Entry {
        path: rel.to_owned(),
        kind: EntryKind::Dir { mode },
    });
    let mut names = Vec::new();
    for entry in fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        if cancelled.load(Ordering::Relaxed) {
            return Err(TreeError::cancelled(to));
        }
        let src = from.join(&name);
        let dst = to.join(&name);
        let Some(name) = name.to_str() else {
            return Err(TreeError {
                path: src,
                reason: "the name is not UTF-8, which the manifest cannot record".into(),
            });
        };
        let child = if rel == "." {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&src).map_err(at(&src))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(at(&src))?;
            let Some(text) = target.to_str() else {
                return Err(TreeError {
                    path: src,
                    reason: "the link target is not UTF-8".into(),
                });
            };
            symlink(&target, &dst).map_err(at(&dst))?;
            manifest.entries.push(Entry {
                path: child,
                kind: EntryKind::Symlink {
                    target: text.to_owned(),
                },
            });
        } else if kind.is_dir() {
            copy_dir(&src, &dst, &child, manifest, cancelled)?;
        } else if kind.is_file() {
            let mode = mode_of(&meta);
            let (size, sha256) = copy_file(&src, &dst, mode, cancelled)?;
            manifest.entries.push(Entry {
                path: child,
                kind: EntryKind::File { mode, size, sha256 },
            });
        } else {
            return Err(TreeError {
                path: src,
                reason: "is a socket, FIFO or device, which a snapshot cannot copy".into(),
            });
        }
    }
    // Last, so that a read-only directory could still be filled.
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(at(to))?;
    dir.sync_all().map_err(at(to))?;
    durable::synced(to);
    Ok(())
}

/// Copies one file's bytes, hashing what was read, and syncs the copy with its `mode`.
fn copy_file(
    from: &Path,
    to: &Path,
    mode: u32,
    cancelled: &AtomicBool,
) -> Result<(u64, String), TreeError> {
    let mut src = fs::File::open(from).map_err(at(from))?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(at(to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(TreeError::cancelled(to));
        }
        let n = src.read(&mut buf).map_err(at(from))?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        dst.write_all(chunk).map_err(at(to))?;
        size += n as u64;
    }
    dst.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(at(to))?;
    dst.sync_all().map_err(at(to))?;
    durable::synced(to);
    Ok((size, hex(&hasher.finalize())))
}

/// Removes the tree at `path`, first making its directories writable so that read-only ones
/// can be emptied. A missing tree is already removed.
pub(crate) fn remove_tree(path: &Path) -> Result<(), TreeError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(path)(e)),
    };
    if meta.is_dir() {
        make_writable(path)?;
        fs::remove_dir_all(path).map_err(at(path))
    } else {
        fs::remove_file(path).map_err(at(path))
    }
}

fn make_writable(dir: &Path) -> Result<(), TreeError> {
    let meta = fs::symlink_metadata(dir).map_err(at(dir))?;
    let mode = mode_of(&meta);
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700)).map_err(at(dir))?;
    }
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        if entry.file_type().map_err(at(dir))?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy that is never cancelled.
    fn go() -> AtomicBool {
        AtomicBool::new(false)
    }

    fn sample(root: &Path) {
        fs::create_dir_all(root.join("data/nested")).unwrap();
        fs::write(root.join("data/a.txt"), b"alpha").unwrap();
        fs::write(root.join("data/nested/b.bin"), vec![7u8; 200_000]).unwrap();
        fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink("data/a.txt", root.join("current")).unwrap();
        symlink("/nonexistent/target", root.join("dangling")).unwrap();
        fs::create_dir(root.join("locked")).unwrap();
        fs::write(root.join("locked/secret"), b"s").unwrap();
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o500)).unwrap();
    }

    #[test]
    fn a_copy_keeps_paths_modes_and_symlinks_and_hashes_what_it_read() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        sample(&src);
        let dst = tmp.path().join("dst");
        let manifest = copy_tree(&src, &dst, &go()).unwrap();

        assert_eq!(fs::read(dst.join("data/a.txt")).unwrap(), b"alpha");
        assert_eq!(
            fs::metadata(dst.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
        assert_eq!(
            fs::read_link(dst.join("current")).unwrap(),
            PathBuf::from("data/a.txt")
        );
        assert!(
            fs::symlink_metadata(dst.join("dangling"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            fs::metadata(dst.join("locked"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o500
        );
        assert_eq!(manifest.size(), 5 + 200_000 + 10 + 1);
        let a = manifest
            .entries
            .iter()
            .find(|e| e.path == "data/a.txt")
            .unwrap();
        assert_eq!(
            a.kind,
            EntryKind::File {
                mode: fs::metadata(src.join("data/a.txt"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777,
                size: 5,
                // sha256("alpha")
                sha256: "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8".into(),
            }
        );

        // Copying the copy gives the same manifest; a change shows up as a difference.
        let again = copy_tree(&dst, &tmp.path().join("again"), &go()).unwrap();
        assert_eq!(again, manifest);
        assert_eq!(again.digest(), manifest.digest());
        fs::write(tmp.path().join("again/data/a.txt"), b"beta").unwrap();
        fs::remove_file(tmp.path().join("again/run.sh")).unwrap();
        let changed =
            copy_tree(&tmp.path().join("again"), &tmp.path().join("third"), &go()).unwrap();
        let diff = manifest.differences(&changed, 10);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("`data/a.txt` differs"), "{diff:?}");
        assert!(diff[1].starts_with("`run.sh` is missing"), "{diff:?}");
        assert_ne!(changed.digest(), manifest.digest());

        for dir in ["dst", "again", "third", "src"] {
            remove_tree(&tmp.path().join(dir)).unwrap();
            assert!(!tmp.path().join(dir).exists());
        }
    }

    #[test]
    fn a_copy_syncs_every_file_and_directory_it_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        sample(&src);
        let dst = tmp.path().join("dst");
        let manifest = copy_tree(&src, &dst, &go()).unwrap();
        let synced = durable::log::synced_under(&dst);
        for entry in &manifest.entries {
            let path = if entry.path == "." {
                dst.clone()
            } else {
                dst.join(&entry.path)
            };
            let must = !matches!(entry.kind, EntryKind::Symlink { .. });
            assert_eq!(synced.contains(&path), must, "{}: {synced:?}", entry.path);
        }
        // A directory is synced after everything in it: then its names are durable too.
        let position = |p: &Path| synced.iter().position(|s| s == p).unwrap();
        assert!(position(&dst.join("data/nested/b.bin")) < position(&dst.join("data/nested")));
        assert!(position(&dst.join("data")) < position(&dst));
        remove_tree(&dst).unwrap();
    }

    #[test]
    fn a_cancelled_copy_stops_before_the_next_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        sample(&src);
        let dst = tmp.path().join("dst");
        let err = copy_tree(&src, &dst, &AtomicBool::new(true)).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);
    }

    #[test]
    fn copying_refuses_a_missing_source_a_file_and_an_existing_target() {
        let tmp = tempfile::tempdir().unwrap();
        let err = copy_tree(&tmp.path().join("missing"), &tmp.path().join("x"), &go()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs::write(tmp.path().join("file"), b"x").unwrap();
        let err = copy_tree(&tmp.path().join("file"), &tmp.path().join("x"), &go()).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        fs::create_dir(tmp.path().join("src")).unwrap();
        fs::create_dir(tmp.path().join("dst")).unwrap();
        assert!(copy_tree(&tmp.path().join("src"), &tmp.path().join("dst"), &go()).is_err());
    }

    #[test]
    fn differences_name_the_paths_that_differ_whatever_their_characters() {
        // Depth first with sorted names puts `a/x` before `a-b`, though `-` sorts before `/`.
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("a/x"), b"x").unwrap();
        fs::write(src.join("a-b"), b"b").unwrap();
        fs::write(src.join("+c"), b"c").unwrap();
        let expected = copy_tree(&src, &tmp.path().join("one"), &go()).unwrap();
        fs::remove_file(src.join("a/x")).unwrap();
        let actual = copy_tree(&src, &tmp.path().join("two"), &go()).unwrap();
        assert_eq!(expected.differences(&actual, 10), ["`a/x` is missing"]);
        assert_eq!(
            actual.differences(&expected, 10),
            ["`a/x` was not in the backup"]
        );
        fs::remove_file(src.join("+c")).unwrap();
        let fewer = copy_tree(&src, &tmp.path().join("three"), &go()).unwrap();
        assert_eq!(actual.differences(&fewer, 10), ["`+c` is missing"]);
    }

    #[test]
    fn the_manifest_serializes_in_camel_case_with_a_kind_tag() {
        let m = Manifest {
            entries: vec![Entry {
                path: "f".into(),
                kind: EntryKind::File {
                    mode: 0o644,
                    size: 1,
                    sha256: "ab".into(),
                },
            }],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"entries":[{"path":"f","kind":"file","mode":420,"size":1,"sha256":"ab"}]}"#
        );
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }
}
