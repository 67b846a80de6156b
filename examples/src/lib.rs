//! Runnable examples of Serin live beside this crate as `[[example]]` targets.
