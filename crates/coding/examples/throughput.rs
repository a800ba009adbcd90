//! Measures quantization and range-coding throughput at vocabulary 49,152.
//!
//! `cargo run --release -p tenbits-coding --example throughput`

use std::hint::black_box;
use std::time::Instant;
use tenbits_coding::{quantize_logits, Decoder, Encoder};

fn main() {
    const V: usize = 49_152;
    const ROWS: usize = 64;
    const N: usize = 3_000;
    // Logit rows shaped like a language model's: a few large values over a
    // broad low background.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let rows: Vec<Vec<f32>> = (0..ROWS)
        .map(|_| {
            (0..V)
                .map(|_| {
                    let u = next();
                    if u > 0.9995 {
                        10.0 + 10.0 * next()
                    } else {
                        -5.0 + 10.0 * next()
                    }
                })
                .collect()
        })
        .collect();
    let symbols: Vec<usize> = (0..N).map(|i| (i * 7919) % V).collect();

    let mut freqs = Vec::new();
    let t = Instant::now();
    for i in 0..N {
        quantize_logits(black_box(&rows[i % ROWS]), &mut freqs);
        black_box(&freqs);
    }
    let q = t.elapsed().as_secs_f64();

    let mut enc = Encoder::new();
    let t = Instant::now();
    for (i, &s) in symbols.iter().enumerate() {
        quantize_logits(&rows[i % ROWS], &mut freqs);
        enc.encode(s, &freqs).unwrap();
    }
    let e = t.elapsed().as_secs_f64();
    let bytes = enc.finish();

    let mut dec = Decoder::new(&bytes).unwrap();
    let t = Instant::now();
    for (i, &s) in symbols.iter().enumerate() {
        quantize_logits(&rows[i % ROWS], &mut freqs);
        assert_eq!(dec.decode(&freqs).unwrap(), s);
    }
    let d = t.elapsed().as_secs_f64();

    let per = |secs: f64| {
        format!(
            "{:>8.0} symbols/s ({:>6.1} µs each)",
            N as f64 / secs,
            secs / N as f64 * 1e6
        )
    };
    println!("V = {V}, {N} symbols");
    println!("quantize_logits only:     {}", per(q));
    println!("quantize + encode:        {}", per(e));
    println!("quantize + decode:        {}", per(d));
    println!("payload: {} bytes", bytes.len());
}
