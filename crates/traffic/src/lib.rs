//! serin-traffic (being written).
