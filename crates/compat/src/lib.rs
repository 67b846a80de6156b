//! serin-compat (being written).
