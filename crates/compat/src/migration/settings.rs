//! Session settings (`lock_timeout`, `statement_timeout`) as PostgreSQL keeps them through
//! transactions: a `SET` in a transaction is undone by `ROLLBACK` (and by `ROLLBACK TO
//! SAVEPOINT` when it came after the savepoint), and a `SET LOCAL` lasts until the
//! transaction ends, when the value the session had (or was given by a plain `SET` in the
//! transaction) comes back. Checked against PostgreSQL 15 with `SHOW` after each form.

/// A transaction event that settings follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event<'a> {
    /// `BEGIN`, or a runner opening its transaction.
    Begin,
    /// `COMMIT` (or a runner committing): what `SET LOCAL` set ends.
    Commit,
    /// `ROLLBACK`: everything set in the transaction is undone.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(&'a str),
    /// `ROLLBACK TO [SAVEPOINT] name`: what was set since the savepoint is undone.
    RollbackTo(&'a str),
    /// `RELEASE [SAVEPOINT] name`: the savepoint (and those after it) are forgotten.
    Release(&'a str),
}

/// One setting of the session.
#[derive(Debug, Clone, Default)]
pub(super) struct Setting<T> {
    /// The value in force.
    now: T,
    /// The value a commit leaves: the session's, as the last plain `SET` gave it.
    kept: T,
    /// The value before the transaction in force, which a rollback brings back.
    before: Option<T>,
    /// The savepoints of the transaction in force, oldest first, with `now` and `kept` then.
    savepoints: Vec<(String, T, T)>,
}

impl<T: Clone> Setting<T> {
    /// The value in force.
    pub(super) fn get(&self) -> &T {
        &self.now
    }

    /// `SET` (`local`: `SET LOCAL`, which the caller passes only inside a transaction).
    pub(super) fn set(&mut self, value: T, local: bool) {
        if !local {
            self.kept = value.clone();
        }
        self.now = value;
    }

    /// Follows `event` of the transaction.
    pub(super) fn follow(&mut self, event: Event<'_>) {
        match event {
            Event::Begin => {
                self.before = Some(self.now.clone());
                self.savepoints.clear();
            }
            Event::Commit => {
                self.now = self.kept.clone();
                self.before = None;
                self.savepoints.clear();
            }
            Event::Rollback => {
                if let Some(before) = self.before.take() {
                    self.kept = before;
                }
                self.now = self.kept.clone();
                self.savepoints.clear();
            }
            Event::Savepoint(name) => {
                self.savepoints
                    .push((name.to_owned(), self.now.clone(), self.kept.clone()));
            }
            // The most recent savepoint of the name counts; it stays for another rollback.
            Event::RollbackTo(name) => {
                if let Some(at) = self.savepoint(name) {
                    self.savepoints.truncate(at + 1);
                    if let Some((_, now, kept)) = self.savepoints.last() {
                        (self.now, self.kept) = (now.clone(), kept.clone());
                    }
                }
            }
            Event::Release(name) => {
                if let Some(at) = self.savepoint(name) {
                    self.savepoints.truncate(at);
                }
            }
        }
    }

    fn savepoint(&self, name: &str) -> Option<usize> {
        self.savepoints.iter().rposition(|(n, _, _)| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(&str, Option<u32>)]) -> u32 {
        let mut s = Setting::<u32>::default();
        for (what, value) in steps {
            match (*what, value) {
                ("set", Some(v)) => s.set(*v, false),
                ("local", Some(v)) => s.set(*v, true),
                ("begin", _) => s.follow(Event::Begin),
                ("commit", _) => s.follow(Event::Commit),
                ("rollback", _) => s.follow(Event::Rollback),
                ("savepoint", _) => s.follow(Event::Savepoint("a")),
                ("rollback to", _) => s.follow(Event::RollbackTo("a")),
                ("release", _) => s.follow(Event::Release("a")),
                _ => unreachable!(),
            }
        }
        *s.get()
    }

    #[test]
    fn settings_follow_transactions_as_postgresql_does() {
        let (set, local) = ("set", "local");
        let (begin, commit, rollback) = ("begin", "commit", "rollback");
        // The same sequences were run on PostgreSQL 15, reading the value with SHOW.
        for (steps, want) in [
            (
                vec![
                    (set, Some(1)),
                    (begin, None),
                    (local, Some(0)),
                    (commit, None),
                ],
                1,
            ),
            (
                vec![
                    (set, Some(1)),
                    (begin, None),
                    (local, Some(2)),
                    (commit, None),
                ],
                1,
            ),
            (vec![(begin, None), (set, Some(5)), (rollback, None)], 0),
            (
                vec![
                    (begin, None),
                    (set, Some(3)),
                    (local, Some(4)),
                    (commit, None),
                ],
                3,
            ),
            (
                vec![
                    (begin, None),
                    (local, Some(4)),
                    (set, Some(2)),
                    (commit, None),
                ],
                2,
            ),
            (
                vec![
                    (set, Some(1)),
                    (begin, None),
                    ("savepoint", None),
                    (set, Some(7)),
                    ("rollback to", None),
                ],
                1,
            ),
            (
                vec![
                    (set, Some(1)),
                    (begin, None),
                    ("savepoint", None),
                    (set, Some(7)),
                    ("rollback to", None),
                    (commit, None),
                ],
                1,
            ),
            (
                vec![
                    (begin, None),
                    (set, Some(8)),
                    ("savepoint", None),
                    (local, Some(9)),
                    ("release", None),
                ],
                9,
            ),
            (
                vec![
                    (begin, None),
                    (set, Some(8)),
                    ("savepoint", None),
                    (local, Some(9)),
                    ("release", None),
                    (commit, None),
                ],
                8,
            ),
            (vec![(begin, None), (set, Some(6)), (commit, None)], 6),
        ] {
            assert_eq!(run(&steps), want, "{steps:?}");
        }
    }
}
