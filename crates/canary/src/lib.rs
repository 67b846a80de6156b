//! serin-canary (being written).
