//! Compress and decompress bytes with the default model through the
//! library API, as an application embedding tenbits would.
//!
//! ```sh
//! python3 scripts/setup.py
//! cargo run --release --example roundtrip -- examples/data/sample.txt
//! ```

use tenbits_inference::{Registry, SessionSettings};
use tenbits_lossless::{compress, decompress, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/data/sample.txt".into());
    let data = std::fs::read(&path)?;

    let registry = Registry::embedded();
    let name = registry.defaults.model.clone();
    let mut model = registry.load(&name, SessionSettings::default())?;

    let options = Options {
        model_name: name,
        ..Options::default()
    };
    let (packed, stats) = compress(&mut model, &data, &options, &mut |_| {})?;
    let restored = decompress(&mut model, &packed, &mut |_| {})?;
    assert_eq!(restored, data, "round trip must be exact");

    println!(
        "{path}: {} bytes -> {} bytes ({:.3} bits/byte), {} tokens, model cross-entropy {:.3} bits/byte",
        data.len(),
        packed.len(),
        packed.len() as f64 * 8.0 / data.len().max(1) as f64,
        stats.tokens,
        stats.model_bits / data.len().max(1) as f64
    );
    Ok(())
}
