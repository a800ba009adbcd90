//! Wire protocol and transports for question-asking sessions.
//!
//! Empty for now: the question-asking issue adds versioned, length-prefixed
//! frames (hello, question, one-bit answer, packed bits, accept/reject, bye)
//! and two transports behind one interface (in-process channels and TCP).
//! This crate will know nothing of models: it moves bits and frames.
