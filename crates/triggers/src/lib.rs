//! serin-triggers (being written).
