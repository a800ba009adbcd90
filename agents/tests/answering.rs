//! The three answering paths, the session loop of `tenbits_qa::run`, a
//! `LocalAnswerer` behind the `Answerer` seam and the `AnswererActor` of a
//! deployment, give the same answers (bits, P(yes) and basis) to the same
//! requests, and refuse the same requests.

use std::time::Duration;

use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{AgentError, AnswererArgs, AnswererHandle, TaskSpec};
use tenbits_qa::{
    run, Answer, AnswerBook, AnswerRequest, Answerer, AnswererView, Basis, Config, Knowledge,
    LocalAnswerer, Problem, QaError, Setting, Task, Transcript,
};

const SMALL: &str = "smollm2-135m";
const LARGE: &str = "qwen2.5-coder-1.5b";

fn world() -> FakeWorld {
    let tasks: Vec<TaskSpec> = [("What is 6 x 7?", "42"), ("What is 3 cubed?", "27")]
        .iter()
        .map(|(p, a)| TaskSpec {
            task: tenbits_agents::config::TaskName::Short,
            problem: p.to_string(),
            answer: Some(a.to_string()),
        })
        .collect();
    FakeWorld::new(&tasks)
}

/// The requests a two-round session made: each round's questions about the
/// answer it started from.
fn requests(t: &Transcript, problem: &Problem, sees_answer: bool) -> Vec<AnswerRequest> {
    let mut current = t.draft.clone();
    let mut out = Vec::new();
    for round in &t.rounds {
        out.push(AnswerRequest {
            problem: problem.clone(),
            current_answer: current.clone(),
            questions: round.questions.clone(),
            sees_answer,
            verdict: false,
        });
        current = round.revision.clone();
    }
    out
}

fn actor(world: &FakeWorld, rt: &tokio::runtime::Runtime, knowledge: Knowledge) -> AnswererHandle {
    let args = AnswererArgs {
        model: Box::new(world.model(LARGE)),
        book: AnswerBook::new(knowledge, Config::default().answer_sampling),
        max_batch: 1024,
        max_wait: Duration::from_millis(20),
    };
    rt.block_on(AnswererHandle::spawn(args)).unwrap()
}

/// Every request sent at once, so the actor answers them in one batch.
fn ask_actor(
    rt: &tokio::runtime::Runtime,
    handle: &AnswererHandle,
    requests: &[AnswerRequest],
) -> Vec<Result<Vec<Answer>, AgentError>> {
    rt.block_on(async {
        let calls: Vec<_> = requests
            .iter()
            .map(|r| {
                tokio::spawn({
                    let (handle, r) = (handle.clone(), r.clone());
                    async move { handle.answer(r).await }
                })
            })
            .collect();
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.unwrap());
        }
        out
    })
}

#[test]
fn three_answering_paths_give_the_same_answers() {
    let world = world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let with_reference = Problem::new(Task::ShortAnswer, "What is 6 x 7?").with_reference("42");
    let without = Problem::new(Task::ShortAnswer, "What is 3 cubed?");
    let mut compared = 0;
    for knowledge in [
        Knowledge::Reference,
        Knowledge::OwnSolution,
        Knowledge::ReferenceElseOwn,
    ] {
        for sees_answer in [false, true] {
            let config = Config {
                rounds: 2,
                view: AnswererView {
                    knowledge,
                    sees_answer,
                    checks_claims: false,
                    ..AnswererView::default()
                },
                ..Config::default()
            };
            let handle = actor(&world, &rt, knowledge);
            for problem in [&with_reference, &without] {
                let (mut small, mut large) = (world.model(SMALL), world.model(LARGE));
                let session = run(Setting::Qa, &config, &mut small, &mut large, problem);
                let needs_reference =
                    knowledge == Knowledge::Reference && problem.reference.is_none();
                if needs_reference {
                    assert!(matches!(session, Err(QaError::Invalid(_))), "{session:?}");
                    let request = AnswerRequest {
                        problem: problem.clone(),
                        current_answer: "Answer: 270".into(),
                        questions: vec!["Is the answer 27?".into()],
                        sees_answer,
                        verdict: false,
                    };
                    let mut large = world.model(LARGE);
                    let mut local =
                        LocalAnswerer::new(&mut large, knowledge, config.answer_sampling.clone());
                    assert!(matches!(local.answer(&request), Err(QaError::Invalid(_))));
                    let by_actor = ask_actor(&rt, &handle, &[request]);
                    let err = by_actor[0].as_ref().unwrap_err().to_string();
                    assert!(err.contains("needs a reference answer"), "{err}");
                    continue;
                }
                let session = session.unwrap();
                let requests = requests(&session, problem, sees_answer);
                let expected: Vec<Vec<Answer>> =
                    session.rounds.iter().map(|r| r.answers.clone()).collect();
                let basis = match (knowledge, &problem.reference) {
                    (Knowledge::OwnSolution, _) | (Knowledge::ReferenceElseOwn, None) => {
                        Basis::OwnSolution
                    }
                    _ => Basis::Reference,
                };
                for answers in &expected {
                    assert!(answers
                        .iter()
                        .all(|a| a.basis == Some(basis) && a.p_yes.is_some()));
                }

                let mut large = world.model(LARGE);
                let mut local =
                    LocalAnswerer::new(&mut large, knowledge, config.answer_sampling.clone());
                let by_local: Vec<Vec<Answer>> =
                    requests.iter().map(|r| local.answer(r).unwrap()).collect();
                assert_eq!(
                    by_local, expected,
                    "{knowledge:?}, sees_answer {sees_answer}"
                );

                let by_actor: Vec<Vec<Answer>> = ask_actor(&rt, &handle, &requests)
                    .into_iter()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(
                    by_actor, expected,
                    "{knowledge:?}, sees_answer {sees_answer}"
                );
                compared += 1;
            }
            handle.stop();
        }
    }
    assert_eq!(compared, 10);
}
