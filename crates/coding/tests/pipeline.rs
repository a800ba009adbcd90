//! End to end through the public API: logits -> quantized tables -> one
//! interleaved range-coded stream -> `.tb` container -> back.

use proptest::prelude::*;
use tenbits_coding::{
    freq_bits, header_checksum, quantize_logits, read_container, verify, write_container,
    ContainerError, Decoder, Encoder, FilesId, Header, ModelRef, Schedule, Windowed,
    FORMAT_VERSION,
};

/// A toy deterministic "model": logits for stream `s` at position `pos`
/// after the previous token `prev`.
fn toy_logits(vocab: usize, s: usize, pos: usize, prev: usize, out: &mut Vec<f32>) {
    out.clear();
    let mut h =
        (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (pos as u64) << 20 ^ prev as u64;
    for _ in 0..vocab {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        out.push(((h >> 40) as f32 / (1u64 << 24) as f32) * 12.0 - 6.0);
    }
}

fn header_for(original: &[u8], tokens: u64) -> Header {
    Header {
        format_version: FORMAT_VERSION,
        model: ModelRef::Named("toy".into()),
        files: FilesId::Tiny([1, 2]),
        adapter_id: Some("00112233aabb".into()),
        lossy: None,
        schedule: Schedule::Windowed(Windowed::DEFAULT),
        token_count: tokens,
        original_len: original.len() as u64,
        checksum: header_checksum(FORMAT_VERSION, original),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Several streams coded step by step into one payload, as the lossless
    /// schedule does, decode back exactly; the coded size tracks the tables'
    /// information content.
    #[test]
    fn interleaved_streams_roundtrip(
        vocab in 2usize..400,
        streams in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..40), 1..5),
    ) {
        let streams: Vec<Vec<usize>> = streams
            .iter()
            .map(|s| s.iter().map(|&t| usize::from(t) % vocab).collect())
            .collect();
        let steps = streams.iter().map(Vec::len).max().unwrap_or(0);
        let mut logits = Vec::new();
        let mut freqs = Vec::new();
        let mut encoder = Encoder::new();
        let mut ideal_bits = 0.0;
        for pos in 0..steps {
            for (s, stream) in streams.iter().enumerate() {
                if let Some(&tok) = stream.get(pos) {
                    let prev = if pos == 0 { 0 } else { stream[pos - 1] };
                    toy_logits(vocab, s, pos, prev, &mut logits);
                    quantize_logits(&logits, &mut freqs);
                    ideal_bits += freq_bits(&freqs, tok);
                    encoder.encode(tok, &freqs).unwrap();
                }
            }
        }
        let total_tokens = encoder.symbols();
        let payload = encoder.finish();
        prop_assert!((payload.len() as f64) <= ideal_bits / 8.0 + 2.0);

        let original: Vec<u8> = streams.iter().flatten().map(|&t| t as u8).collect();
        let file = write_container(&header_for(&original, total_tokens), &payload).unwrap();
        let (header, payload) = read_container(&file).unwrap();
        prop_assert_eq!(header.token_count, total_tokens);

        let mut decoder = Decoder::new(payload).unwrap();
        let mut decoded: Vec<Vec<usize>> = streams.iter().map(|_| Vec::new()).collect();
        for pos in 0..steps {
            for (s, stream) in streams.iter().enumerate() {
                if pos < stream.len() {
                    let prev = if pos == 0 { 0 } else { decoded[s][pos - 1] };
                    toy_logits(vocab, s, pos, prev, &mut logits);
                    quantize_logits(&logits, &mut freqs);
                    decoded[s].push(decoder.decode(&freqs).unwrap());
                }
            }
        }
        prop_assert_eq!(&decoded, &streams);
        let bytes: Vec<u8> = decoded.iter().flatten().map(|&t| t as u8).collect();
        prop_assert_eq!(verify(&header, &bytes), Ok(()));
    }
}

/// A decoder that uses different tables than the encoder (a "different
/// model") goes wrong, and `verify` refuses the result.
#[test]
fn wrong_model_is_refused() {
    let tokens: Vec<usize> = (0..200).map(|i| (i * 31) % 50).collect();
    let mut logits = Vec::new();
    let mut freqs = Vec::new();
    let mut encoder = Encoder::new();
    for (pos, &t) in tokens.iter().enumerate() {
        toy_logits(50, 0, pos, 0, &mut logits);
        quantize_logits(&logits, &mut freqs);
        encoder.encode(t, &freqs).unwrap();
    }
    let payload = encoder.finish();
    let original: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
    let header = header_for(&original, tokens.len() as u64);

    let mut decoder = Decoder::new(&payload).unwrap();
    let mut decoded = Vec::new();
    for pos in 0..tokens.len() {
        // Stream index 1 instead of 0: other logits.
        toy_logits(50, 1, pos, 0, &mut logits);
        quantize_logits(&logits, &mut freqs);
        match decoder.decode(&freqs) {
            Ok(t) => decoded.push(t as u8),
            Err(_) => break,
        }
    }
    assert_ne!(decoded, original);
    let err = verify(&header, &decoded).unwrap_err();
    assert!(matches!(
        err,
        ContainerError::ChecksumMismatch | ContainerError::LengthMismatch { .. }
    ));
    assert!(err.to_string().contains("nothing was written"), "{err}");
}
