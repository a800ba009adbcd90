//! The embedded runtime: load the models once, then ask many problems in
//! one process, reading each transcript and its payload bits.
//!
//!     cargo run --release --example embedded                          # config/local.toml
//!     cargo run --release --example embedded -- config/asker.toml     # a remote answerer
//!
//! (`python3 scripts/setup.py --all` first; with config/asker.toml, start
//! `tenbits serve --config config/answerer.toml` in another terminal.)

use tenbits_agents::Runtime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config/local.toml".into());
    let mut runtime = Runtime::builder().config_file(&config)?.build()?;
    let cfg = runtime.config();
    println!(
        "asker {} -> answerer {} ({:?}, {} questions)",
        cfg.asker.model,
        cfg.answerer_name(),
        cfg.transport.kind,
        cfg.protocol.questions
    );
    for problem in ["What is 17 + 25?", "What is 12 x 11?", "What is 100 - 37?"] {
        let report = runtime.ask(problem)?;
        let t = &report.transcript;
        let bits: String = t
            .rounds
            .iter()
            .flat_map(|r| r.answers.iter())
            .map(|a| if a.bit { '1' } else { '0' })
            .collect();
        println!("{problem}");
        println!("  draft:    {}", t.draft.lines().last().unwrap_or_default());
        println!(
            "  bits:     {bits} ({} on the wire)",
            report.wire.payload_bits_received
        );
        println!(
            "  revision: {}",
            t.answer().lines().last().unwrap_or_default()
        );
    }
    if let Some(stats) = runtime.shutdown() {
        println!(
            "answerer: {} sessions, {} questions in {} batches",
            stats.sessions_completed, stats.answerer.questions, stats.answerer.batches
        );
    }
    Ok(())
}
