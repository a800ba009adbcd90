//! `model-rows.onnx` (logits only at the rows asked for) computes what
//! `model.onnx` computes at those rows, and leaves the same cache behind
//! (the tiny fixture model; needs ONNX Runtime).

use std::path::{Path, PathBuf};

use tenbits_inference::{
    BatchedModel, Generator, InferenceError, LanguageModel, Message, OnnxModel, SessionSettings,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

fn settings() -> SessionSettings {
    SessionSettings { threads: 1 }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn rows_graph_gives_the_base_graphs_logits_at_the_rows_asked_for() {
    let mut base = OnnxModel::load(&dir(), settings()).unwrap();
    let mut rows = OnnxModel::load_for_rows(&dir(), settings()).unwrap();
    assert!(
        rows.computes_rows_only(),
        "the fixture has a matching rows graph"
    );
    assert!(!base.computes_rows_only());
    assert_eq!(base.fingerprint(), rows.fingerprint());
    let vocab = base.vocab_size();

    // Two streams of four positions, the second with two padding slots.
    let tokens = [5, 9, 13, 2, 7, 11, 0, 0];
    let real = [true, true, true, true, true, true, false, false];
    let (mut cb, mut cr) = (base.new_cache(2, 16), rows.new_cache(2, 16));
    let (mut all, mut picked) = (Vec::new(), Vec::new());
    base.forward_padded(&mut cb, &tokens, Some(&real), &mut all)
        .unwrap();
    rows.forward_rows(&mut cr, &tokens, Some(&real), &[3, 0, 1, 1], &mut picked)
        .unwrap();
    assert_eq!(picked.len(), 4 * vocab);
    for (i, (stream, row)) in [(0, 3), (0, 0), (1, 1), (1, 1)].into_iter().enumerate() {
        let at = stream * 4 + row;
        let d = max_diff(
            &picked[i * vocab..(i + 1) * vocab],
            &all[at * vocab..(at + 1) * vocab],
        );
        assert!(d < 1e-4, "row {i}: differs by {d}");
    }

    // The caches are the same: the next step agrees at every row.
    let next = [3, 4];
    base.forward_padded(&mut cb, &next, None, &mut all).unwrap();
    rows.forward_padded(&mut cr, &next, None, &mut picked)
        .unwrap();
    let d = max_diff(&all, &picked);
    assert!(d < 1e-4, "after the cache: differs by {d}");

    // The base graph answers forward_rows too, by picking.
    let mut via_base = Vec::new();
    let mut cb2 = base.new_cache(2, 16);
    base.forward_rows(&mut cb2, &tokens, Some(&real), &[3, 1], &mut via_base)
        .unwrap();
    assert_eq!(via_base.len(), 2 * vocab);
}

#[test]
fn rows_that_do_not_fit_the_call_are_refused() {
    let mut rows = OnnxModel::load_for_rows(&dir(), settings()).unwrap();
    let mut cache = rows.new_cache(2, 16);
    let mut logits = Vec::new();
    for bad in [&[0usize, 1, 2][..], &[0, 4], &[]] {
        let err = rows
            .forward_rows(
                &mut cache,
                &[1, 2, 3, 4, 5, 6, 7, 8],
                None,
                bad,
                &mut logits,
            )
            .unwrap_err();
        assert!(matches!(err, InferenceError::RowsMismatch { .. }), "{err}");
    }
}

#[test]
fn generation_and_yes_no_scores_match_the_base_graph() {
    let mut base = Generator::new(OnnxModel::load(&dir(), settings()).unwrap()).unwrap();
    let mut rows = Generator::new(OnnxModel::load_for_rows(&dir(), settings()).unwrap()).unwrap();
    let conversations: Vec<Vec<Message>> = ["is two even?", "is the sky green today?", "yes?"]
        .iter()
        .map(|q| vec![Message::user(*q)])
        .collect();
    let (pb, pr) = (
        base.p_yes(&conversations).unwrap(),
        rows.p_yes(&conversations).unwrap(),
    );
    for (b, r) in pb.iter().zip(&pr) {
        assert!((b - r).abs() < 1e-5, "p_yes {b} against {r}");
    }
    let sampling = tenbits_inference::Sampling {
        max_tokens: 12,
        ..Default::default()
    };
    let (a, b) = (
        base.chat(&conversations[0], &sampling).unwrap(),
        rows.chat(&conversations[0], &sampling).unwrap(),
    );
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn a_rows_graph_from_another_model_is_ignored() {
    let tmp = std::env::temp_dir().join(format!("tenbits-rows-stale-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // Another model.onnx (the optimum-layout fixture) beside the tiny
    // model's rows graph, which records the tiny model.onnx's sha256.
    let other = dir().with_file_name("tiny-optimum");
    for name in ["model.onnx", "tokenizer.json", "config.json"] {
        std::fs::copy(other.join(name), tmp.join(name)).unwrap();
    }
    std::fs::copy(dir().join("model-rows.onnx"), tmp.join("model-rows.onnx")).unwrap();
    let loaded = OnnxModel::load_for_rows(&tmp, settings());
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(!loaded.unwrap().computes_rows_only());
}
