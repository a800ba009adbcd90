//! Asker and answerer actors.
//!
//! Empty for now: the question-asking issue adds `ractor` actors that host
//! models (an answerer serving many askers, batching their questions) and
//! talk through `tenbits-messaging`.
