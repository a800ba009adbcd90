//! What each fuzz target checks, shared by the targets (`fuzz_targets/`)
//! and by the normal test suite, which replays the seed corpus and every
//! saved crash (`tests/fuzz_regressions.rs`). Each check panics only on a
//! real failure: a panic inside tenbits, or a broken invariant.

use tenbits_coding::{
    write_container, FilesId, Header, ModelRef, Schedule, Windowed, FORMAT_VERSION,
};
use tenbits_inference::{LanguageModel, OnnxModel};
use tenbits_messaging::{decode_frame, encode_frame, MAX_FRAME_BYTES};

/// The `.tb` container parser: refused or parsed; what parses re-reads the same.
pub fn container(data: &[u8]) {
    if let Ok((header, payload)) = tenbits_coding::read_container(data) {
        assert!(payload.len() <= data.len());
        let again = tenbits_coding::read_container(data).expect("parses twice");
        assert_eq!(again.0, header);
    }
    let _ = tenbits_lossless::inspect(data);
    // The framing of a file of blocks, read to its end.
    if let Ok(mut reader) = tenbits_coding::BlockReader::new(data) {
        while let Ok(Some(block)) = reader.next_block() {
            assert!(block.len() <= data.len());
            reader.decoded(block.len() as u64);
        }
    }
}

/// The range decoder with the tiny model: the bytes as a whole file, and
/// as the payload of a well-formed header (past the CRC, so the decoder
/// itself is reached). Success must come with the checksum's blessing,
/// which `decompress` checks itself.
pub fn decoder(model: &mut OnnxModel, data: &[u8]) {
    let _ = tenbits_lossless::decompress(model, data, &mut |_| {});
    let [tokens, extra, mixing, payload @ ..] = data else {
        return;
    };
    let token_count = u64::from(*tokens % 48);
    let header = Header {
        format_version: FORMAT_VERSION,
        model: ModelRef::Named("tiny".into()),
        files: FilesId::for_format(FORMAT_VERSION, model.fingerprint().files_id()),
        adapter_id: None,
        lossy: None,
        schedule: Schedule::Windowed(Windowed {
            window: 256,
            keep: 128,
            mixing: mixing & 1,
            ..Windowed::DEFAULT
        }),
        token_count,
        original_len: token_count + u64::from(*extra % 16),
        checksum: vec![0; 4],
    };
    if let Ok(file) = write_container(&header, payload) {
        let _ = tenbits_lossless::decompress(model, &file, &mut |_| {});
    }
}

/// The wire frame decoder: refused, or a frame that encodes and decodes
/// back to itself.
pub fn frame(data: &[u8]) {
    if let Ok(frame) = decode_frame(data, MAX_FRAME_BYTES) {
        let bytes = encode_frame(&frame, MAX_FRAME_BYTES).expect("a decoded frame encodes");
        let again = decode_frame(&bytes, MAX_FRAME_BYTES).expect("and decodes");
        assert_eq!(again, frame);
    }
}

/// The deployment-config loader.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tenbits_agents::DeploymentConfig::from_toml(text);
    }
}

/// The task-file, HumanEval and BIG-bench loaders.
pub fn tasks(data: &[u8]) {
    use tenbits_eval::{parse_text, TextFormat};
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tenbits_agents::config::parse_tasks(text);
        for format in [
            TextFormat::TaskFile,
            TextFormat::HumanEval,
            TextFormat::BigBench,
        ] {
            let _ = parse_text(format, "fuzz-input", text);
        }
    }
}
