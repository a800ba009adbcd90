//! The protocol: draft, questions, one-bit answers, revision; the named
//! settings; the one-way [`Sender`] and [`Receiver`].
//!
//! Every path runs one session loop. Only the source of the bits differs:
//! [`run`] and [`Sender`] hold the answerer model and compute them (and
//! encode them into the transcript's payload); [`Receiver`] reads them from
//! a payload. The asker's side (draft, questions, predictions, revisions) is
//! the same code with the same prompts, so a deterministic asker on both
//! ends yields the same transcript.
//!
//! One round: the questioner writes N questions about the current answer
//! (one `generate` call, parsed by [`parse_questions`]); the answerer
//! answers each ([`answer_batch`]); the asker answers again from the
//! problem, its current answer and all questions and answers so far. In
//! the iterative variant the answerer first judges the current answer with
//! one more bit ([`VERDICT_QUESTION`]) and the session ends on "accept".

use serde::{Deserialize, Serialize};

use crate::answerer::{answer_batch, AnswerBook, AnswerRequest, Answerer};
use crate::coded::{self, BitReader};
use crate::prompts::{self, parse_questions, Task, VERDICT_QUESTION};
use crate::types::{Answer, AnswererView, Knowledge, Problem};
use crate::{generate_one, p_yes, ChatModel, Message, QaError, Sampling};

/// Who plays which part. The small model always drafts and revises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Setting {
    /// Baseline: the small model asks and answers itself. It answers from its
    /// own solution whatever the configured view: it has no reference.
    Blc,
    /// The small model asks, the large one answers.
    Qa,
    /// The large model writes the questions and answers them.
    QaPlus,
}

/// Which model plays a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Small,
    Large,
}

/// Parameters of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Questions per round, N.
    pub questions: usize,
    /// Rounds of questions, at most R.
    pub rounds: usize,
    /// Whether the answerer accepts or rejects (one bit) the current answer
    /// before each round; "accept" ends the session.
    pub iterative: bool,
    /// What the answerer sees.
    pub view: AnswererView,
    /// Whether the asker predicts every bit and the payload is range-coded
    /// under those predictions (see [`coded`]).
    pub code_answers: bool,
    /// Sampling of drafts, own solutions and revisions.
    pub answer_sampling: Sampling,
    /// Sampling of question lists.
    pub question_sampling: Sampling,
}

impl Default for Config {
    /// 10 questions, one round, not iterative, reference view, plain bits.
    fn default() -> Self {
        Self {
            questions: 10,
            rounds: 1,
            iterative: false,
            view: AnswererView::default(),
            code_answers: false,
            answer_sampling: Sampling::default(),
            question_sampling: Sampling::default(),
        }
    }
}

/// One round of questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Exactly N questions.
    pub questions: Vec<String>,
    /// One answer per question.
    pub answers: Vec<Answer>,
    /// The asker's answer after this round.
    pub revision: String,
}

impl Round {
    /// The answer bits.
    pub fn bits(&self) -> Vec<bool> {
        self.answers.iter().map(|a| a.bit).collect()
    }
}

/// Everything that happened in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// [`PROMPT_VERSION`](crate::PROMPT_VERSION) of the prompts used.
    pub prompt_version: u32,
    /// Who played which part.
    pub setting: Setting,
    /// The kind of problem.
    pub task: Task,
    /// The problem statement (the reference answer is never recorded).
    pub problem: String,
    /// [`ChatModel::model_id`] of the asker (drafts, revisions, predictions).
    pub asker: [u8; 16],
    /// Id of the model that wrote the questions.
    pub questioner: [u8; 16],
    /// Id of the model that answered.
    pub answerer: [u8; 16],
    /// The asker's first answer.
    pub draft: String,
    /// The answerer's own solution, if its view used one (answerer side only).
    pub answerer_solution: Option<String>,
    /// Accept/reject bits (iterative variant): `verdicts[i]` judged the
    /// answer before `rounds[i]`; a last one may accept the final answer.
    pub verdicts: Vec<Answer>,
    /// The rounds of questions.
    pub rounds: Vec<Round>,
    /// One-bit answers sent, verdicts included.
    pub raw_bits: usize,
    /// −log2 of those bits' probability under the asker's quantized
    /// predictions (equal to `raw_bits` without coding).
    pub ideal_bits: f64,
    /// The bytes that carry the bits (what a one-way sender transmits).
    pub payload: Vec<u8>,
}

impl Transcript {
    /// The asker's final answer.
    pub fn answer(&self) -> &str {
        self.rounds.last().map_or(&self.draft, |r| &r.revision)
    }

    /// Bits actually sent: payload bytes × 8.
    pub fn payload_bits(&self) -> usize {
        self.payload.len() * 8
    }

    /// The transcript without what only the answerer's side knows (its
    /// P(yes) values and own solution): what a [`Receiver`] reconstructs.
    pub fn public(&self) -> Transcript {
        let mut t = self.clone();
        t.answerer_solution = None;
        let answers = t
            .verdicts
            .iter_mut()
            .chain(t.rounds.iter_mut().flat_map(|r| &mut r.answers));
        answers.for_each(|a| (a.p_yes, a.basis) = (None, None));
        t
    }
}

/// Plays one setting on one problem, with both models at hand.
pub fn run(
    setting: Setting,
    config: &Config,
    small: &mut dyn ChatModel,
    large: &mut dyn ChatModel,
    problem: &Problem,
) -> Result<Transcript, QaError> {
    let mut config = config.clone();
    let answerer = if setting == Setting::Blc {
        config.view.knowledge = Knowledge::OwnSolution;
        Who::Small
    } else {
        Who::Large
    };
    let answerer_id = if answerer == Who::Small {
        small.model_id()
    } else {
        large.model_id()
    };
    let models = Models {
        small,
        large: Some(large),
    };
    Session::new(&config, problem, models, Source::Model(answerer)).play(setting, answerer_id)
}

/// Plays one setting with the answerer behind the [`Answerer`] seam (a
/// [`LocalAnswerer`](crate::LocalAnswerer), or one across a wire): the same
/// session loop as [`run`], which it matches transcript for transcript when
/// the answerer is a [`LocalAnswerer`](crate::LocalAnswerer) over the same
/// model with the same knowledge.
///
/// - [`Setting::Qa`]: the small model asks, `answerer` answers. What the
///   answerer knows (reference or own solution) is the answerer's own
///   business; `config.view.knowledge` is not consulted, while
///   `config.view.sees_answer` goes into every [`AnswerRequest`].
/// - [`Setting::Blc`]: the small model answers itself, as in [`run`];
///   `answerer` is not consulted.
/// - [`Setting::QaPlus`] needs the large model to write the questions, which
///   this seam does not carry: [`QaError::Invalid`].
pub fn run_remote(
    setting: Setting,
    config: &Config,
    small: &mut dyn ChatModel,
    answerer: &mut dyn Answerer,
    problem: &Problem,
) -> Result<Transcript, QaError> {
    match setting {
        Setting::Qa => {
            let id = answerer.id();
            let models = Models { small, large: None };
            Session::new(config, problem, models, Source::Remote(answerer)).play(setting, id)
        }
        Setting::Blc => {
            let mut config = config.clone();
            config.view.knowledge = Knowledge::OwnSolution;
            let id = small.model_id();
            let models = Models { small, large: None };
            Session::new(&config, problem, models, Source::Model(Who::Small)).play(setting, id)
        }
        Setting::QaPlus => Err(QaError::Invalid(
            "QA+ needs the answerer to write the questions, which a remote answerer cannot",
        )),
    }
}

/// The one-way sender: holds the answerer and a replica of the asker,
/// simulates the asker (QA setting) and computes the bits.
/// [`Transcript::payload`] is all that needs to be transmitted.
pub struct Sender<'m> {
    asker: &'m mut dyn ChatModel,
    answerer: &'m mut dyn ChatModel,
    config: Config,
}

impl<'m> Sender<'m> {
    /// A sender; `asker` must be the receiver's exact model.
    pub fn new(
        asker: &'m mut dyn ChatModel,
        answerer: &'m mut dyn ChatModel,
        config: Config,
    ) -> Self {
        Self {
            asker,
            answerer,
            config,
        }
    }

    /// Runs the QA setting on `problem`; the payload is in the transcript.
    pub fn send(&mut self, problem: &Problem) -> Result<Transcript, QaError> {
        run(
            Setting::Qa,
            &self.config,
            &mut *self.asker,
            &mut *self.answerer,
            problem,
        )
    }
}

/// The one-way receiver: the asker alone, reading the bits from a payload.
pub struct Receiver<'m> {
    asker: &'m mut dyn ChatModel,
    config: Config,
    answerer_id: [u8; 16],
}

impl<'m> Receiver<'m> {
    /// A receiver with the sender's [`Config`] and the answerer's id (agreed
    /// in a handshake; recorded in the transcript).
    pub fn new(asker: &'m mut dyn ChatModel, config: Config, answerer_id: [u8; 16]) -> Self {
        Self {
            asker,
            config,
            answerer_id,
        }
    }

    /// Replays the session from the payload: the same drafts and questions,
    /// the bits decoded, the revisions made.
    pub fn receive(&mut self, problem: &Problem, payload: &[u8]) -> Result<Transcript, QaError> {
        let reader = BitReader::new(payload, self.config.code_answers)?;
        let models = Models {
            small: &mut *self.asker,
            large: None,
        };
        let bits = Source::Payload(reader, payload);
        Session::new(&self.config, problem, models, bits).play(Setting::Qa, self.answerer_id)
    }
}

/// The models at hand; a receiver has no large one.
struct Models<'a> {
    small: &'a mut dyn ChatModel,
    large: Option<&'a mut dyn ChatModel>,
}

impl Models<'_> {
    fn get(&mut self, who: Who) -> Result<&mut dyn ChatModel, QaError> {
        match who {
            Who::Small => Ok(&mut *self.small),
            Who::Large => match &mut self.large {
                Some(m) => Ok(&mut **m),
                None => Err(QaError::Invalid("no large model here")),
            },
        }
    }
}

/// Where the bits come from.
enum Source<'a> {
    /// This model answers.
    Model(Who),
    /// A payload (kept to record it).
    Payload(BitReader<'a>, &'a [u8]),
    /// An answerer behind the [`Answerer`] seam.
    Remote(&'a mut dyn Answerer),
}

struct Session<'a> {
    config: &'a Config,
    problem: &'a Problem,
    models: Models<'a>,
    bits: Source<'a>,
    /// What a local answerer knows (its own solution, once written).
    book: AnswerBook,
    /// Every bit so far with its prediction, in order.
    sent: Vec<(bool, Option<f64>)>,
}

impl<'a> Session<'a> {
    fn new(config: &'a Config, problem: &'a Problem, models: Models<'a>, bits: Source<'a>) -> Self {
        Self {
            config,
            problem,
            models,
            bits,
            book: AnswerBook::for_view(&config.view, config.answer_sampling.clone()),
            sent: Vec::new(),
        }
    }

    fn play(mut self, setting: Setting, answerer: [u8; 16]) -> Result<Transcript, QaError> {
        let (config, problem) = (self.config, self.problem);
        let (task, text, n) = (problem.task, problem.text.as_str(), config.questions);
        let questioner = if setting == Setting::QaPlus {
            Who::Large
        } else {
            Who::Small
        };
        let draft_prompt = prompts::solve(task, text, None);
        let draft = generate_one(
            &mut *self.models.small,
            draft_prompt,
            &config.answer_sampling,
        )?;
        let mut t = Transcript {
            prompt_version: prompts::PROMPT_VERSION,
            setting,
            task,
            problem: problem.text.clone(),
            asker: self.models.small.model_id(),
            questioner: self.models.get(questioner)?.model_id(),
            answerer,
            draft: draft.clone(),
            answerer_solution: None,
            verdicts: Vec::new(),
            rounds: Vec::new(),
            raw_bits: 0,
            ideal_bits: 0.0,
            payload: Vec::new(),
        };
        let (mut current, mut history) = (draft, Vec::new());
        for _ in 0..config.rounds {
            if config.iterative {
                let verdict = self
                    .answer(&[VERDICT_QUESTION.to_string()], &current, true)?
                    .remove(0);
                t.verdicts.push(verdict);
                if t.verdicts.last().is_some_and(|v| v.bit) {
                    break;
                }
            }
            let prompt = prompts::questions(text, &current, &history, n);
            let listing = generate_one(
                self.models.get(questioner)?,
                prompt,
                &config.question_sampling,
            )?;
            let questions = parse_questions(&listing, n);
            let answers = self.answer(&questions, &current, false)?;
            history.extend(questions.iter().cloned().zip(answers.iter().map(|a| a.bit)));
            let prompt = prompts::revise(task, text, &current, &history);
            current = generate_one(&mut *self.models.small, prompt, &config.answer_sampling)?;
            t.rounds.push(Round {
                questions,
                answers,
                revision: current.clone(),
            });
        }
        // In the order sent, verdicts between rounds.
        let (bits, predicted): (Vec<bool>, Vec<Option<f64>>) = self.sent.iter().copied().unzip();
        let predicted: Option<Vec<f64>> = predicted.into_iter().collect();
        t.raw_bits = bits.len();
        t.ideal_bits = match &predicted {
            Some(p) if config.code_answers => {
                bits.iter().zip(p).map(|(&b, &p)| coded::cost(b, p)).sum()
            }
            _ => bits.len() as f64,
        };
        t.payload = match self.bits {
            Source::Payload(_, payload) => payload.to_vec(),
            Source::Model(_) | Source::Remote(_) => {
                coded::encode_bits(&bits, predicted.as_deref().filter(|_| config.code_answers))?
            }
        };
        t.answerer_solution = match self.bits {
            Source::Remote(answerer) => answerer.own_solution(&problem.text),
            _ => self.book.own_solution(&problem.text).map(String::from),
        };
        Ok(t)
    }

    /// One [`Answer`] per question about `answer`: the asker's predictions
    /// (when coding), then the bits, from the answerer or the payload. The
    /// verdict question always shows the answer; others per the view.
    fn answer(
        &mut self,
        questions: &[String],
        answer: &str,
        verdict: bool,
    ) -> Result<Vec<Answer>, QaError> {
        let predicted: Vec<Option<f64>> = if self.config.code_answers {
            let text = self.problem.text.as_str();
            let views: Vec<Vec<Message>> = questions
                .iter()
                .map(|q| prompts::yes_no(text, None, Some(answer), q))
                .collect();
            p_yes(&mut *self.models.small, &views)?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None; questions.len()]
        };
        let request = AnswerRequest {
            problem: self.problem.clone(),
            current_answer: answer.to_string(),
            questions: questions.to_vec(),
            sees_answer: self.config.view.sees_answer,
            verdict,
        };
        let answers: Vec<Answer> = match &mut self.bits {
            Source::Payload(reader, _) => {
                let read = |p: &Option<f64>| {
                    let bit = reader.read(p.unwrap_or(0.5))?;
                    let (p_yes, predicted, basis) = (None, None, None);
                    Ok(Answer {
                        bit,
                        p_yes,
                        predicted,
                        basis,
                    })
                };
                predicted.iter().map(read).collect::<Result<_, QaError>>()?
            }
            &mut Source::Model(who) => {
                let model = self.models.get(who)?;
                answer_batch(&mut self.book, model, &[&request])?.remove(0)
            }
            Source::Remote(answerer) => answerer.answer(&request)?,
        };
        if answers.len() != questions.len() {
            return Err(QaError::Count {
                model: "the answerer".into(),
                expected: questions.len(),
                got: answers.len(),
            });
        }
        let with_prediction = |(a, predicted)| Answer { predicted, ..a };
        let answers: Vec<Answer> = answers
            .into_iter()
            .zip(predicted)
            .map(with_prediction)
            .collect();
        self.sent
            .extend(answers.iter().map(|a| (a.bit, a.predicted)));
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::grade;
    use crate::testing::{Fake, Guess};
    use crate::PROMPT_VERSION;

    const OPTIONS: [&str; 8] = ["40", "41", "42", "43", "44", "45", "46", "47"];

    fn problem() -> Problem {
        Problem::new(Task::ShortAnswer, "What is 6 x 7?").with_reference("42")
    }
    fn small() -> Fake {
        Fake::new("small", "41", &OPTIONS)
    }
    fn large() -> Fake {
        Fake::new("large", "42", &["42", "6 x 7"])
    }
    fn only(n: usize, yes: usize) -> Vec<bool> {
        (0..n).map(|i| i == yes).collect()
    }

    #[test]
    fn qa_small_asks_large_answers() {
        let (mut s, mut l) = (small(), large());
        let t = run(Setting::Qa, &Config::default(), &mut s, &mut l, &problem()).unwrap();
        assert_eq!(t.draft, "Answer: 41");
        let asked: Vec<String> = OPTIONS
            .iter()
            .map(|o| format!("Is the answer {o}?"))
            .collect();
        assert_eq!(t.rounds[0].questions[..8], asked[..]);
        assert_eq!(t.rounds[0].questions[8..], [prompts::FALLBACK_QUESTION; 2]);
        assert_eq!(t.rounds[0].bits(), only(10, 2));
        assert_eq!(t.rounds[0].answers[2].p_yes, Some(0.9));
        assert_eq!(t.answer(), "Answer: 42");
        assert_eq!(grade(t.task, t.answer(), "42"), Some(true));
        assert_eq!(
            (t.prompt_version, t.setting, t.raw_bits, t.ideal_bits),
            (PROMPT_VERSION, Setting::Qa, 10, 10.0)
        );
        assert_eq!(
            (t.asker, t.questioner, t.answerer),
            (s.model_id(), s.model_id(), l.model_id())
        );
        assert_eq!(t.payload, [0b0010_0000]); // the ten bits, packed
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Transcript>(&json).unwrap(), t);
    }

    #[test]
    fn blc_answers_from_its_own_solution() {
        let (mut s, mut l) = (small(), large());
        let t = run(Setting::Blc, &Config::default(), &mut s, &mut l, &problem()).unwrap();
        assert_eq!(t.answerer, s.model_id());
        assert_eq!(t.answerer_solution.as_deref(), Some("Answer: 41"));
        // "Is the answer 41?" and the padding "Is the answer correct?": yes.
        let mut bits = only(10, 1);
        bits[8..].fill(true);
        assert_eq!(t.rounds[0].bits(), bits);
        assert_eq!(grade(t.task, t.answer(), "42"), Some(false));
        assert_eq!(l.solves, 0, "the large model is not consulted");
    }

    #[test]
    fn qa_plus_large_writes_the_questions() {
        let (mut s, mut l) = (small(), large());
        let t = run(
            Setting::QaPlus,
            &Config::default(),
            &mut s,
            &mut l,
            &problem(),
        )
        .unwrap();
        assert_eq!((t.questioner, t.answerer), (l.model_id(), l.model_id()));
        assert_eq!(
            t.rounds[0].questions[..2],
            ["Is the answer 42?", "Is the answer 6 x 7?"]
        );
        assert_eq!(t.rounds[0].bits(), only(10, 0));
        assert_eq!(t.answer(), "Answer: 42");
    }

    #[test]
    fn iterative_rounds_stop_on_accept_and_solve_once() {
        let (mut s, mut l) = (small(), large());
        let view = AnswererView {
            knowledge: Knowledge::OwnSolution,
            sees_answer: false,
            checks_claims: false,
            ..AnswererView::default()
        };
        let config = Config {
            iterative: true,
            rounds: 3,
            view,
            ..Config::default()
        };
        let t = run(Setting::Qa, &config, &mut s, &mut l, &problem()).unwrap();
        let verdicts: Vec<bool> = t.verdicts.iter().map(|v| v.bit).collect();
        assert_eq!(verdicts, [false, true]);
        assert_eq!((t.rounds.len(), t.raw_bits), (1, 12));
        assert_eq!(t.answer(), "Answer: 42");
        assert_eq!(t.answerer_solution.as_deref(), Some("Answer: 42"));
        assert_eq!(l.solves, 1, "the own solution is generated once");

        let no_reference = Problem::new(Task::ShortAnswer, "What is 6 x 7?");
        let err = run(
            Setting::Qa,
            &Config::default(),
            &mut s,
            &mut l,
            &no_reference,
        );
        assert!(matches!(err, Err(QaError::Invalid(_))), "{err:?}");
    }

    #[test]
    fn local_answerer_gives_the_same_transcript_as_run() {
        use crate::answerer::LocalAnswerer;
        let own = AnswererView {
            knowledge: Knowledge::OwnSolution,
            sees_answer: false,
            checks_claims: false,
            ..AnswererView::default()
        };
        let configs = [
            Config::default(),
            Config {
                iterative: true,
                rounds: 3,
                view: own,
                code_answers: true,
                ..Config::default()
            },
        ];
        for config in configs {
            let (mut s, mut l) = (small(), large());
            let expected = run(Setting::Qa, &config, &mut s, &mut l, &problem()).unwrap();
            let (mut s, mut l) = (small(), large());
            let mut answerer = LocalAnswerer::new(
                &mut l,
                config.view.knowledge,
                config.answer_sampling.clone(),
            );
            let t = run_remote(Setting::Qa, &config, &mut s, &mut answerer, &problem()).unwrap();
            assert_eq!(t, expected);
            assert!(l.solves <= 1, "the own solution is generated once");
        }
        // BLC runs locally; QA+ cannot run against a remote answerer.
        let (mut s, mut l) = (small(), large());
        let expected = run(Setting::Blc, &Config::default(), &mut s, &mut l, &problem()).unwrap();
        let (mut s, mut l) = (small(), large());
        let mut answerer = LocalAnswerer::new(&mut l, Knowledge::Reference, Sampling::default());
        let t = run_remote(
            Setting::Blc,
            &Config::default(),
            &mut s,
            &mut answerer,
            &problem(),
        );
        assert_eq!(t.unwrap(), expected);
        let t = run_remote(
            Setting::QaPlus,
            &Config::default(),
            &mut s,
            &mut answerer,
            &problem(),
        );
        assert!(matches!(t, Err(QaError::Invalid(_))), "{t:?}");
    }

    /// Sends with `asker` replicated on both sides; returns both transcripts.
    fn one_way(asker: &Fake, config: &Config) -> (Transcript, Transcript) {
        let (mut replica, mut l) = (asker.clone(), large());
        let sent = Sender::new(&mut replica, &mut l, config.clone())
            .send(&problem())
            .unwrap();
        let mut own = asker.clone();
        let unseen = Problem {
            reference: None,
            ..problem()
        };
        let received = Receiver::new(&mut own, config.clone(), l.model_id())
            .receive(&unseen, &sent.payload)
            .unwrap();
        (sent, received)
    }

    #[test]
    fn receiver_rebuilds_the_senders_transcript() {
        let config = Config {
            iterative: true,
            rounds: 2,
            code_answers: true,
            ..Config::default()
        };
        let (sent, received) = one_way(&small(), &config);
        assert_eq!(received, sent.public());
        assert_ne!(
            sent,
            sent.public(),
            "the sender knows the answerer's P(yes)"
        );
        assert_eq!(received.answer(), "Answer: 42");
        assert_eq!(received.verdicts.len(), 2);

        // Plain bits: flipping the one "yes" loses the fix.
        let (sent, _) = one_way(&small(), &Config::default());
        let mut own = small();
        let flipped: Vec<u8> = sent.payload.iter().map(|b| b ^ 0b0010_0000).collect();
        let r = Receiver::new(&mut own, Config::default(), [0; 16])
            .receive(&problem(), &flipped)
            .unwrap();
        assert_eq!(
            (r.rounds[0].bits(), r.answer()),
            (vec![false; 10], "Answer: 41")
        );
    }

    #[test]
    fn coded_answers_cost_little_when_predicted_well() {
        let config = Config {
            code_answers: true,
            ..Config::default()
        };
        let mut asker = small();
        asker.guess = Guess::Good("42".into());
        let (sent, received) = one_way(&asker, &config);
        assert_eq!(received, sent.public());
        assert_eq!(received.rounds[0].bits(), only(10, 2));
        assert!(sent.ideal_bits < 2.0, "{}", sent.ideal_bits);
        assert!(sent.payload_bits() <= 8, "{:?}", sent.payload);
    }

    #[test]
    fn coded_answers_survive_adversarial_predictions() {
        let config = Config {
            code_answers: true,
            ..Config::default()
        };
        let mut asker = small();
        asker.guess = Guess::Adversarial("42".into());
        let (sent, received) = one_way(&asker, &config);
        assert_eq!(received, sent.public());
        assert_eq!(received.rounds[0].bits(), only(10, 2));
        assert!(sent.ideal_bits > 50.0, "{}", sent.ideal_bits);
        // Plain fallback: 10 bits + 1 flag bit, in whole bytes.
        assert!(sent.payload_bits() <= 16, "{:?}", sent.payload);
    }
}
