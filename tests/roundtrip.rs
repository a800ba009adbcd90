//! Round trips through a tiny random-weight model in the real ONNX layout
//! (`tests/fixtures/tiny`, written by `scripts/convert_gguf.py --tiny`).

use std::path::Path;

use proptest::prelude::*;
use tenbits_inference::{
    AdapterId, Fingerprint, InferenceError, LanguageModel, ModelConfig, OnnxModel, SessionSettings,
    TextTokenizer,
};
use tenbits_lossless::{compress, decompress, Options, Schedule, Windowed};

fn tiny(threads: usize) -> OnnxModel {
    load("tests/fixtures/tiny", threads)
}

/// The same tiny model with fp32 weights in Hugging Face optimum's
/// growing-cache layout, the form users' own exports take.
fn tiny_optimum(threads: usize) -> OnnxModel {
    load("tests/fixtures/tiny-optimum", threads)
}

fn load(dir: &str, threads: usize) -> OnnxModel {
    OnnxModel::load(Path::new(dir), SessionSettings { threads }).expect(
        "tiny fixture model loads (run `python3 scripts/setup.py` for the ONNX Runtime library)",
    )
}

/// Format-1 options: chunks coded from their own start.
fn options(chunk_tokens: usize, max_batch: usize) -> Options {
    Options {
        model_name: "tiny".into(),
        schedule: Schedule::Chunked {
            chunk_tokens: chunk_tokens as u32,
            max_batch: max_batch as u32,
        },
        lossy: None,
    }
}

/// Format-2 options: streams with a sliding window, mixing on or off.
fn windowed(window: u32, keep: u32, max_streams: u32, min_segment: u32, mixing: bool) -> Options {
    Options {
        model_name: "tiny".into(),
        schedule: Schedule::Windowed(Windowed {
            window,
            keep,
            max_streams,
            min_segment,
            mixing: u8::from(mixing),
        }),
        lossy: None,
    }
}

fn round_trip(model: &mut OnnxModel, data: &[u8], opts: &Options) -> Vec<u8> {
    let (packed, stats) = compress(model, data, opts, &mut |_| {}).expect("compress");
    assert_eq!(stats.container_bytes, packed.len());
    decompress(model, &packed, &mut |_| {}).expect("decompress")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..1500), chunk in 1usize..200, batch in 1usize..9) {
        let mut model = tiny(1);
        let restored = round_trip(&mut model, &data, &options(chunk, batch));
        prop_assert_eq!(restored, data);
    }

    #[test]
    fn random_bytes_round_trip_through_the_optimum_layout(data in proptest::collection::vec(any::<u8>(), 0..800), chunk in 1usize..100, batch in 1usize..5) {
        let mut model = tiny_optimum(1);
        let restored = round_trip(&mut model, &data, &options(chunk, batch));
        prop_assert_eq!(restored, data);
    }

    #[test]
    fn random_text_round_trips(text in "(\\PC|\n|\t| ){0,600}", chunk in 1usize..128, batch in 1usize..6) {
        let mut model = tiny(2);
        let restored = round_trip(&mut model, text.as_bytes(), &options(chunk, batch));
        prop_assert_eq!(restored, text.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_round_trip_with_sliding_windows_and_mixing(
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        window in 2u32..120,
        keep_part in 0.0f64..1.0,
        streams in 1u32..6,
        min in 1u32..400,
        mixing in any::<bool>(),
    ) {
        let keep = ((window - 1) as f64 * keep_part) as u32 + 1;
        let mut model = tiny(1);
        let restored = round_trip(&mut model, &data, &windowed(window, keep, streams, min, mixing));
        prop_assert_eq!(restored, data);
    }

    #[test]
    fn repetitive_text_round_trips_with_mixing(
        words in proptest::collection::vec("[a-z]{1,6}", 1..12),
        repeats in 1usize..30,
        window in 16u32..200,
        streams in 1u32..4,
    ) {
        let text: String = (0..repeats).flat_map(|_| words.iter().map(|w| format!("{w} "))).collect();
        let mut model = tiny(2);
        let restored = round_trip(&mut model, text.as_bytes(), &windowed(window, window / 2, streams, 64, true));
        prop_assert_eq!(restored, text.as_bytes());
    }
}

#[test]
fn empty_input_round_trips() {
    let mut model = tiny(1);
    assert_eq!(round_trip(&mut model, b"", &options(256, 16)), b"");
    assert_eq!(round_trip(&mut model, b"", &Options::default()), b"");
}

/// The shapes of every call a model gets: `new_cache(batch, capacity)`
/// and `forward(tokens.len())`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    NewCache(usize, usize),
    Forward(usize),
}

/// A model that records its calls and passes them on.
struct Recording<M> {
    inner: M,
    calls: std::cell::RefCell<Vec<Call>>,
}

impl<M: LanguageModel> LanguageModel for Recording<M> {
    type Cache = M::Cache;
    fn config(&self) -> &ModelConfig {
        self.inner.config()
    }
    fn fingerprint(&self) -> &Fingerprint {
        self.inner.fingerprint()
    }
    fn tokenizer(&self) -> &TextTokenizer {
        self.inner.tokenizer()
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn adapter_id(&self) -> Option<&AdapterId> {
        self.inner.adapter_id()
    }
    fn new_cache(&self, batch: usize, capacity: usize) -> M::Cache {
        self.calls
            .borrow_mut()
            .push(Call::NewCache(batch, capacity));
        self.inner.new_cache(batch, capacity)
    }
    fn forward(
        &mut self,
        cache: &mut M::Cache,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        self.calls.get_mut().push(Call::Forward(tokens.len()));
        self.inner.forward(cache, tokens, logits)
    }
}

#[test]
fn encoder_and_decoder_make_the_same_calls_with_sliding_windows_and_mixing() {
    let text: Vec<u8> = (0..3000u32)
        .map(|i| b"a match model sees the repeats; the window slides. "[i as usize % 51])
        .collect();
    for opts in [
        windowed(40, 10, 3, 100, true),
        windowed(64, 63, 1, 1, false),
        options(50, 2),
    ] {
        let mut model = Recording {
            inner: tiny(1),
            calls: Default::default(),
        };
        let (packed, stats) = compress(&mut model, &text, &opts, &mut |_| {}).unwrap();
        let encoder_calls = model.calls.take();
        assert_eq!(decompress(&mut model, &packed, &mut |_| {}).unwrap(), text);
        assert_eq!(encoder_calls, model.calls.take(), "{:?}", opts.schedule);
        let forwards = encoder_calls
            .iter()
            .filter(|c| matches!(c, Call::Forward(_)))
            .count() as u64;
        assert_eq!(forwards, stats.forwards);
        if let Schedule::Windowed(w) = opts.schedule {
            assert!(stats.slides > 0, "the window slid");
            // A slide refeeds `keep` tokens per stream in one piece here.
            let streams = stats.chunks;
            assert!(encoder_calls.contains(&Call::Forward(streams * w.keep as usize)));
            assert!(encoder_calls
                .iter()
                .all(|c| !matches!(c, Call::NewCache(b, cap) if *b != streams || *cap > w.window as usize)));
        }
    }
}

#[test]
fn mixing_codes_repeats_cheaper_than_the_model_alone() {
    let mut model = tiny(1);
    let line = b"fn parse_header(reader: &mut Reader) -> Result<Header> { ... }\n";
    let text: Vec<u8> = (0..4000).map(|i| line[i % line.len()]).collect();
    let (plain, _) = compress(
        &mut model,
        &text,
        &windowed(256, 128, 2, 64, false),
        &mut |_| {},
    )
    .unwrap();
    let (mixed, stats) = compress(
        &mut model,
        &text,
        &windowed(256, 128, 2, 64, true),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        stats.mix_predicted > 500 && stats.mix_hits * 10 > stats.mix_predicted * 9,
        "{stats:?}"
    );
    assert!(
        mixed.len() * 4 < plain.len(),
        "{} vs {} bytes",
        mixed.len(),
        plain.len()
    );
    assert!(stats.table_bits < stats.model_bits / 4.0);
    assert_eq!(decompress(&mut model, &mixed, &mut |_| {}).unwrap(), text);
}

#[test]
fn format_3_is_the_default_and_refuses_a_damaged_file() {
    let mut model = tiny(1);
    let data = b"format three by default, under twenty bytes of header".to_vec();
    let (packed, stats) = compress(&mut model, &data, &Options::default(), &mut |_| {}).unwrap();
    let header = tenbits_lossless::inspect(&packed).unwrap();
    assert_eq!(header.format_version, 3);
    // The tiny model is not in the registry: its name (varint 0, then
    // 1 + 4 bytes) is stored; the window was fitted to its 256-token
    // context, so the schedule is written too.
    let header_len = stats.container_bytes - stats.payload_bytes;
    assert!(header_len <= 17 + 6 + 7, "{header_len}-byte header");
    assert_eq!(
        header.schedule,
        Schedule::Windowed(Windowed {
            window: 256,
            keep: 128,
            ..Windowed::DEFAULT
        })
    );
    for i in 0..packed.len() {
        let mut bad = packed.clone();
        bad[i] ^= 0x08;
        assert!(
            decompress(&mut model, &bad, &mut |_| {}).is_err(),
            "flip at {i}"
        );
    }
}

#[test]
fn special_token_text_and_invalid_utf8_round_trip() {
    let mut model = tiny(1);
    let mut data = b"<|endoftext|> then <|im_start|>user\nhi<|im_end|>\n".to_vec();
    data.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, b'x', 0xe2, 0x82]);
    assert_eq!(round_trip(&mut model, &data, &options(7, 3)), data);
}

#[test]
fn long_input_spans_many_batches() {
    let mut model = tiny(2);
    let data: Vec<u8> = (0..20_000u32)
        .map(|i| b"the quick brown fox jumps over the lazy dog. "[i as usize % 45])
        .collect();
    let opts = options(64, 4);
    let (packed, stats) = compress(&mut model, &data, &opts, &mut |_| {}).unwrap();
    assert!(
        stats.batches > 2,
        "expected several batches, got {}",
        stats.batches
    );
    assert_eq!(decompress(&mut model, &packed, &mut |_| {}).unwrap(), data);
    // Format 2 codes it in one batch of streams whose windows slide.
    let (packed, stats) = compress(&mut model, &data, &Options::default(), &mut |_| {}).unwrap();
    assert_eq!(stats.batches, 1);
    assert!(stats.slides > 5, "{} slides", stats.slides);
    assert_eq!(decompress(&mut model, &packed, &mut |_| {}).unwrap(), data);
}

#[test]
fn coded_size_is_the_information_content_of_the_tables() {
    // The random tiny model predicts badly, so its float cross-entropy is
    // not a useful reference here (the frequency floor caps a token at 24
    // bits); the coder's own promise is to spend what the integer tables
    // charge, within a few bytes. The real model's gap to its float
    // cross-entropy is measured by `tenbits bench lossless`.
    let mut model = tiny(1);
    let data: Vec<u8> = (0..6000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 % 64 + 32)
        .collect();
    let (_, stats) = compress(&mut model, &data, &options(128, 8), &mut |_| {}).unwrap();
    let payload_bits = stats.payload_bytes as f64 * 8.0;
    assert!(stats.table_bits > 1000.0);
    assert!(
        payload_bits >= stats.table_bits - 8.0,
        "{payload_bits} bits vs tables {}",
        stats.table_bits
    );
    assert!(
        payload_bits <= stats.table_bits * 1.001 + 32.0,
        "{payload_bits} bits vs tables {}",
        stats.table_bits
    );
}

#[test]
fn static_and_growing_cache_layouts_agree() {
    // Same random weights, two graphs: the fp32 optimum layout and the
    // 4-bit static-cache layout (int8 activations), stepped token by token.
    let (mut q4, mut fp32) = (tiny(1), tiny_optimum(1));
    let tokens: Vec<u32> = q4
        .tokenizer()
        .encode_bytes(b"the cache layouts must agree on every step")
        .unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut ca, mut cb) = (
        q4.new_cache(2, tokens.len()),
        fp32.new_cache(2, tokens.len()),
    );
    let mut argmax_agree = 0;
    for &t in &tokens {
        q4.forward(&mut ca, &[t, t], &mut a).unwrap();
        fp32.forward(&mut cb, &[t, t], &mut b).unwrap();
        let vocab = q4.vocab_size();
        assert_eq!(
            a[..vocab],
            a[vocab..],
            "identical streams give identical rows"
        );
        let argmax = |v: &[f32]| (0..vocab).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
        argmax_agree += usize::from(argmax(&a[..vocab]) == argmax(&b[..vocab]));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 2.0, "logits drift by {worst}");
    }
    assert!(
        argmax_agree * 10 >= tokens.len() * 8,
        "{argmax_agree} of {} argmaxes agree",
        tokens.len()
    );
}

#[test]
fn same_logits_with_one_and_two_threads() {
    let (mut one, mut two) = (tiny(1), tiny(2));
    let tokens: Vec<u32> = one
        .tokenizer()
        .encode_bytes(b"hello there, general kenobi")
        .unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut ca, mut cb) = (
        one.new_cache(1, tokens.len()),
        two.new_cache(1, tokens.len()),
    );
    for &t in &tokens {
        one.forward(&mut ca, &[t], &mut a).unwrap();
        two.forward(&mut cb, &[t], &mut b).unwrap();
        assert_eq!(a, b);
    }
}

/// A copy of the tiny model whose vocabulary lacks the single-byte tokens
/// of bytes 0x04 and 0xff, as SmolLM2's lacks most control bytes.
fn tiny_with_missing_byte_tokens(dir: &Path) -> OnnxModel {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["model.onnx", "config.json"] {
        std::fs::copy(Path::new("tests/fixtures/tiny").join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string("tests/fixtures/tiny/tokenizer.json").unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vocab = json["model"]["vocab"].as_object_mut().unwrap();
    // Byte-level BPE spells 0x04 as U+0104 and 0xff as itself.
    assert!(vocab.remove("\u{104}").is_some() && vocab.remove("\u{ff}").is_some());
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_string(&json).unwrap(),
    )
    .unwrap();
    OnnxModel::load(dir, SessionSettings { threads: 1 }).unwrap()
}

#[test]
fn bytes_missing_from_the_vocabulary_are_escaped() {
    let dir = std::env::temp_dir().join(format!("tenbits-escape-{}", std::process::id()));
    let mut model = tiny_with_missing_byte_tokens(&dir);
    let data = b"ctrl \x04 here, \xff there, and \x04\x04 text around them".to_vec();
    let ids = model.tokenizer().encode_bytes(&data).unwrap();
    let base = model.tokenizer().escape_base();
    assert_eq!(
        ids.iter().filter(|&&id| id >= base).count(),
        4,
        "four escaped bytes"
    );
    assert_eq!(model.tokenizer().decode_bytes(&ids), data);
    let restored = round_trip(&mut model, &data, &options(16, 2));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(restored, data);
}

/// What decompressing a damaged file did: refused, or gave the original.
#[derive(Debug, Default)]
struct Damage {
    refused: usize,
    exact: usize,
}

impl Damage {
    /// Tries every single-bit flip and every truncation of `packed`.
    fn every_flip_and_cut(model: &mut OnnxModel, packed: &[u8], original: &[u8]) -> Damage {
        let mut damage = Damage::default();
        for i in 0..packed.len() * 8 {
            let mut bad = packed.to_vec();
            bad[i / 8] ^= 1 << (i % 8);
            damage.try_one(model, &bad, original, &format!("flip of bit {i}"));
        }
        for cut in 0..packed.len() {
            damage.try_one(model, &packed[..cut], original, &format!("cut at {cut}"));
        }
        damage
    }

    /// Decompresses `bad`; success with other bytes than `original` fails
    /// the test.
    fn try_one(&mut self, model: &mut OnnxModel, bad: &[u8], original: &[u8], what: &str) {
        match decompress(model, bad, &mut |_| {}) {
            Err(e) => {
                assert!(!e.to_string().is_empty(), "{what}: an error says why");
                self.refused += 1;
            }
            Ok(out) => {
                assert_eq!(out, original, "{what}: decoded to wrong bytes with success");
                self.exact += 1;
            }
        }
    }
}

/// Every single-bit flip and every truncation, exhaustively; appended
/// garbage; and splices of two files' headers and payloads: each is
/// refused or decodes to the exact original, never to other bytes.
#[test]
fn damage_is_refused_or_harmless_at_every_bit() {
    let mut model = tiny(1);
    let a = b"Damage anywhere must be caught.".to_vec();
    let b = b"Another file, spliced into the first".to_vec();
    let opts = windowed(256, 128, 8, 768, true);
    let (packed_a, stats_a) = compress(&mut model, &a, &opts, &mut |_| {}).unwrap();
    let (packed_b, stats_b) = compress(&mut model, &b, &opts, &mut |_| {}).unwrap();
    let mut damage = Damage::every_flip_and_cut(&mut model, &packed_a, &a);
    for garbage in [
        &[0u8][..],
        &[0xff],
        &[0, 0, 0, 0],
        b"trailing junk",
        &packed_b,
    ] {
        let mut bad = packed_a.clone();
        bad.extend_from_slice(garbage);
        damage.try_one(
            &mut model,
            &bad,
            &a,
            &format!("{} bytes appended", garbage.len()),
        );
    }
    let (head_a, head_b) = (
        stats_a.container_bytes - stats_a.payload_bytes,
        stats_b.container_bytes - stats_b.payload_bytes,
    );
    let splices = [
        [&packed_a[..head_a], &packed_b[head_b..]].concat(),
        [&packed_b[..head_b], &packed_a[head_a..]].concat(),
    ];
    for (k, bad) in splices.iter().enumerate() {
        damage.try_one(&mut model, bad, &a, &format!("splice {k}"));
    }
    // Appended bytes and cuts are all refused; a flip may only be harmless
    // where it leaves the file's meaning unchanged (none is expected here:
    // the CRC covers every byte).
    assert_eq!(damage.exact, 0, "{damage:?}");
    assert!(damage.refused >= packed_a.len() * 9 + 7, "{damage:?}");
}

/// The same for the format-1 file of tenbits 0.1 and the format-2 file of
/// tenbits 0.2 that this CPU's kernels decode.
#[test]
fn damage_to_files_of_older_formats_is_refused_or_harmless() {
    let mut model = tiny(1);
    for (dir, stem) in [
        ("tests/fixtures/format1", "tiny-f1.txt"),
        ("tests/fixtures/format2", "tiny-f2.txt"),
    ] {
        let dir = Path::new(dir);
        let original = std::fs::read(dir.join(stem)).unwrap();
        // Fixtures are kept per kernel family; use the one this CPU decodes.
        let packed = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&format!("{stem}.")) && name.ends_with(".tb")
            })
            .map(|e| std::fs::read(e.path()).unwrap())
            .find(|p| decompress(&mut model, p, &mut |_| {}).is_ok_and(|d| d == original));
        let Some(packed) = packed else {
            eprintln!("no {stem} fixture decodes with this CPU's kernels; skipped");
            continue;
        };
        let damage = Damage::every_flip_and_cut(&mut model, &packed, &original);
        assert_eq!(damage.exact, 0, "{stem}: {damage:?}");
        assert!(damage.refused >= packed.len() * 9, "{stem}: {damage:?}");
    }
}

/// An input longer than a block streams as a file of blocks (cut after
/// newlines where one is near), decodes exactly, and one that fits is the
/// single container `compress` writes.
#[test]
fn long_inputs_stream_as_blocks_and_round_trip() {
    let mut model = tiny(1);
    let opts = windowed(256, 128, 4, 256, true);
    let line = b"A line of text that repeats, with a counter: ";
    let mut data = Vec::new();
    for i in 0..40 {
        data.extend_from_slice(line);
        data.extend_from_slice(format!("{i}\n").as_bytes());
    }
    let stream = |model: &mut OnnxModel, data: &[u8], block: usize| {
        let mut out = Vec::new();
        let mut last = None;
        let stats = tenbits_lossless::compress_stream(
            model,
            data,
            &mut out,
            &opts,
            block,
            Some(data.len() as u64),
            &mut |p| last = Some(p),
        )
        .unwrap();
        assert_eq!(stats.output_bytes, out.len() as u64);
        assert_eq!(stats.input_bytes, data.len() as u64);
        if !data.is_empty() {
            assert_eq!(last.unwrap().done_bytes, data.len() as u64);
        }
        (out, stats)
    };
    for block in [300, 512, 1000] {
        let (packed, stats) = stream(&mut model, &data, block);
        assert!(tenbits_coding::is_blocks(&packed));
        assert!(stats.blocks >= (data.len() / block) as u64, "{stats:?}");
        // In memory, and streamed to a writer, with the header known first.
        assert_eq!(decompress(&mut model, &packed, &mut |_| {}).unwrap(), data);
        let decoder = tenbits_lossless::StreamDecoder::open(&packed[..]).unwrap();
        assert!(decoder.is_blocks());
        let mut out = Vec::new();
        let n = decoder
            .run(&mut model, &mut out, None, &mut |_| {})
            .unwrap();
        assert_eq!((out, n), (data.clone(), data.len() as u64));
    }
    // One block: exactly what `compress` writes.
    let (packed, stats) = stream(&mut model, &data, data.len());
    assert_eq!(stats.blocks, 1);
    let (single, _) = compress(&mut model, &data, &opts, &mut |_| {}).unwrap();
    assert_eq!(packed, single);
    // Empty input: one empty container.
    let (packed, _) = stream(&mut model, b"", 100);
    assert!(decompress(&mut model, &packed, &mut |_| {})
        .unwrap()
        .is_empty());
}

/// Damage to a file of blocks is refused: a flip of every byte (one bit
/// each, in turn), every cut, appended bytes, blocks of two files spliced.
#[test]
fn damage_to_a_file_of_blocks_is_refused() {
    let mut model = tiny(1);
    let opts = windowed(256, 128, 4, 256, true);
    let blocks_of = |model: &mut OnnxModel, data: &[u8]| {
        let mut out = Vec::new();
        tenbits_lossless::compress_stream(model, data, &mut out, &opts, 20, None, &mut |_| {})
            .unwrap();
        out
    };
    let a = b"first block\nsecond one\nand a third\n".to_vec();
    let b = b"other file:\nits blocks\ndiffer too.\n".to_vec();
    let (packed_a, packed_b) = (blocks_of(&mut model, &a), blocks_of(&mut model, &b));
    let decode = |model: &mut OnnxModel, bytes: &[u8]| {
        let mut out = Vec::new();
        let r = tenbits_lossless::StreamDecoder::open(bytes)
            .and_then(|d| d.run(model, &mut out, None, &mut |_| {}));
        (r, out)
    };
    let mut refused = 0;
    let mut check = |model: &mut OnnxModel, bad: &[u8], what: &str| {
        let (r, out) = decode(model, bad);
        match r {
            Err(_) => refused += 1,
            Ok(_) => assert_eq!(out, a, "{what} decoded to other bytes with success"),
        }
    };
    for i in 0..packed_a.len() {
        let mut bad = packed_a.clone();
        bad[i] ^= 1 << (i % 8);
        check(&mut model, &bad, &format!("flip at {i}"));
    }
    for cut in 0..packed_a.len() {
        check(&mut model, &packed_a[..cut], &format!("cut at {cut}"));
    }
    for tail in [&[0u8][..], b"junk", &packed_a, &packed_b] {
        check(&mut model, &[&packed_a[..], tail].concat(), "appended");
    }
    // The second block of b in place of a's: same framing, other bytes.
    let mut r = tenbits_coding::BlockReader::new(&packed_b[..]).unwrap();
    let _ = r.next_block().unwrap();
    let b2 = r.next_block().unwrap().unwrap();
    let mut r = tenbits_coding::BlockReader::new(&packed_a[..]).unwrap();
    let _ = r.next_block().unwrap();
    let start = r.consumed() as usize;
    let a2 = r.next_block().unwrap().unwrap();
    if a2.len() == b2.len() {
        let mut bad = packed_a.clone();
        bad[start + 1..start + 1 + a2.len()].copy_from_slice(&b2);
        check(&mut model, &bad, "spliced block");
    }
    assert!(refused >= 2 * packed_a.len() + 4, "refused {refused}");
}
