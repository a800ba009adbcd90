//! This process's resident memory, from Linux's `/proc/self/status`
//! (zero elsewhere).

/// Peak resident set size, in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    status_kb("VmHWM:") * 1024
}

/// Current resident set size, in bytes (`VmRSS`).
pub fn current_rss() -> u64 {
    status_kb("VmRSS:") * 1024
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak so the next reading covers only what follows (Linux
/// `clear_refs` mode 5); harmless where unsupported.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
