//! `tenbits serve --openai`'s endpoint and the OpenAI-compatible client,
//! end to end over HTTP on loopback with the tiny fixture model: the
//! client's P(yes) and replies are the local model's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tenbits_inference::{Generator, OnnxModel, SessionSettings, TextTokenizer};
use tenbits_messaging::Token;
use tenbits_openai::server::OpenAiServer;
use tenbits_openai::{OpenAiChatModel, OpenAiConfig};
use tenbits_qa::{ChatModel, Message, Sampling};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

/// SmolLM2-135M (set up by `python3 scripts/setup.py`): the tiny model's
/// vocabulary splits "Yes" and "No", so its first tokens are no words an
/// endpoint's top_logprobs would show.
fn smollm2() -> PathBuf {
    tenbits_inference::Registry::embedded()
        .set_up_dir("smollm2-135m")
        .expect("SmolLM2-135M is set up (python3 scripts/setup.py)")
}

fn generator(dir: &Path) -> Generator<OnnxModel> {
    Generator::new(OnnxModel::load_for_rows(dir, SessionSettings { threads: 2 }).unwrap()).unwrap()
}

/// Starts the endpoint for the tiny model on a free port; returns its base URL.
fn start(token: Option<&str>) -> (String, tokio::runtime::Runtime) {
    start_model(&tiny(), "tiny", token)
}

fn start_model(dir: &Path, name: &str, token: Option<&str>) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let server = OpenAiServer::new(generator(dir), tokenizer, name, token.map(Token::new));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(tenbits_openai::server::serve(
        server,
        listener,
        std::future::pending(),
    ));
    (format!("http://{addr}/v1"), rt)
}

fn client(base_url: &str, key_env: Option<&str>) -> OpenAiChatModel {
    client_for(base_url, "tiny", key_env)
}

fn client_for(base_url: &str, model: &str, key_env: Option<&str>) -> OpenAiChatModel {
    OpenAiChatModel::new(OpenAiConfig {
        base_url: base_url.into(),
        model: model.into(),
        api_key_env: key_env.map(String::from),
        timeout: Duration::from_secs(30),
        retries: 0,
        concurrency: 3,
        top_logprobs: 20,
    })
}

fn conversations() -> Vec<Vec<Message>> {
    [
        "Is two even?",
        "Is the sky green?",
        "Answer yes or no: is 7 prime?",
        "yes?",
    ]
    .iter()
    .map(|q| vec![Message::system("Answer Yes or No."), Message::user(*q)])
    .collect()
}

#[test]
fn the_remote_answerer_gets_the_local_models_bits_and_replies() {
    let dir = smollm2();
    let (url, _rt) = start_model(&dir, "smollm2-135m", None);
    let mut remote = client_for(&url, "smollm2-135m", None);
    let mut local = generator(&dir);
    let want = local.p_yes(&conversations()).unwrap();
    let got = remote.p_yes(&conversations()).unwrap();
    for (w, g) in want.iter().zip(&got) {
        // Exact where both tokens are among the top 20 (as here).
        assert!((w - g).abs() < 1e-4, "local {w}, remote {g}");
        assert_eq!(*w >= 0.5, *g >= 0.5, "the bits agree");
    }
    let sampling = Sampling::greedy(12);
    let local_text = local.chat(&conversations()[0], &sampling).unwrap().text;
    let remote_text = remote
        .generate(&[(conversations()[0].clone(), sampling)])
        .unwrap();
    assert_eq!(remote_text[0], local_text.trim());
}

#[test]
fn a_key_is_required_when_the_server_has_a_token() {
    let (url, _rt) = start(Some("s3cret"));
    let ask =
        |m: &mut OpenAiChatModel| m.generate(&[(conversations()[0].clone(), Sampling::greedy(3))]);
    let err = ask(&mut client(&url, None)).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The variables are this test's own.
    std::env::set_var("TENBITS_TEST_OPENAI_KEY", "s3cret");
    assert!(ask(&mut client(&url, Some("TENBITS_TEST_OPENAI_KEY"))).is_ok());
    std::env::set_var("TENBITS_TEST_OPENAI_WRONG", "s3cre7");
    let err = ask(&mut client(&url, Some("TENBITS_TEST_OPENAI_WRONG"))).unwrap_err();
    assert!(err.to_string().contains("wrong API key"), "{err}");
    assert!(!err.to_string().contains("s3cre7"), "the key never prints");
}

#[test]
fn bad_requests_get_openai_style_errors() {
    let (url, _rt) = start(None);
    let mut wrong = OpenAiChatModel::new(OpenAiConfig {
        model: "not-served".into(),
        base_url: url.clone(),
        api_key_env: None,
        retries: 0,
        ..OpenAiConfig::default()
    });
    let err = wrong
        .generate(&[(conversations()[0].clone(), Sampling::greedy(4))])
        .unwrap_err();
    assert!(
        err.to_string().contains("400") && err.to_string().contains("not-served"),
        "{err}"
    );
    // Nobody listening: a transport error that names the URL.
    let mut gone = client("http://127.0.0.1:9/v1", None);
    let err = gone.p_yes(&conversations()[..1]).unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[test]
fn neither_word_among_the_listed_tokens_is_an_even_chance_not_a_failure() {
    // The tiny model's vocabulary has no "Yes" or "No" token, so no
    // endpoint over it can list them: the answer carries nothing.
    let (url, _rt) = start(None);
    let got = client(&url, None).p_yes(&conversations()).unwrap();
    assert_eq!(got, vec![0.5; conversations().len()]);
}
