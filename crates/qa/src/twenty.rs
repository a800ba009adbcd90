//! Twenty questions, BIG-bench's coordination task: an asker finds a
//! concept with at most N yes/no bits from an answerer that knows it.
//!
//! The asker sees the list of possibilities (a category of BIG-bench's
//! concepts) and, turn by turn, writes a question ([`prompts::twenty_question`]);
//! the answerer answers it from the secret with one bit (P(yes) ≥ 0.5,
//! [`prompts::twenty_answer`]). Every `guess_every` turns, and at the last
//! one, the asker scores the possibilities left as its guess
//! ([`prompts::twenty_guess`]); when the likeliest has probability at least
//! `guess_at` (or on the last turn) it asks "Is it X?", which costs a bit
//! like any question. A "yes" ends the game (found if X is the secret); a
//! "no" strikes X off. Each game is scored by whether the secret was found
//! and how many bits that took.

use crate::{p_yes, prompts, ChatModel, QaError, Sampling};

/// How a game is played.
#[derive(Debug, Clone, PartialEq)]
pub struct TwentyConfig {
    /// Most bits (questions and guesses together).
    pub max_bits: usize,
    /// The asker considers a guess every this many turns (and at the last).
    pub guess_every: usize,
    /// It guesses when its likeliest possibility has this probability.
    pub guess_at: f64,
    /// Tokens of a question.
    pub question_tokens: usize,
}

impl Default for TwentyConfig {
    fn default() -> Self {
        Self {
            max_bits: 20,
            guess_every: 4,
            guess_at: 0.5,
            question_tokens: 32,
        }
    }
}

/// One bit of a game.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The question asked.
    pub question: String,
    /// The answer bit.
    pub bit: bool,
    /// The answerer's P(yes).
    pub p_yes: f64,
    /// The possibility guessed, if this turn was a guess.
    pub guess: Option<String>,
}

/// A played game.
#[derive(Debug, Clone, PartialEq)]
pub struct Game {
    /// The secret.
    pub concept: String,
    /// Every bit, in order.
    pub turns: Vec<Turn>,
    /// The guess the answerer confirmed, if any.
    pub confirmed: Option<String>,
}

impl Game {
    /// Whether the confirmed guess is the secret.
    pub fn found(&self) -> bool {
        self.confirmed.as_deref() == Some(self.concept.as_str())
    }

    /// Bits sent.
    pub fn bits(&self) -> usize {
        self.turns.len()
    }
}

/// Plays one game for `concept`, one of `candidates`.
pub fn play_twenty_questions(
    asker: &mut dyn ChatModel,
    answerer: &mut dyn ChatModel,
    concept: &str,
    candidates: &[String],
    config: &TwentyConfig,
) -> Result<Game, QaError> {
    if !candidates.iter().any(|c| c == concept) {
        return Err(QaError::Invalid("the concept is not among the candidates"));
    }
    let mut left: Vec<String> = candidates.to_vec();
    let mut history: Vec<(String, bool)> = Vec::new();
    let mut game = Game {
        concept: concept.to_string(),
        turns: Vec::new(),
        confirmed: None,
    };
    for turn in 1..=config.max_bits {
        let last = turn == config.max_bits || left.len() == 1;
        let guess = if last || turn % config.guess_every.max(1) == 0 {
            likeliest(asker, &left, &history)?
                .filter(|(_, p)| last || *p >= config.guess_at)
                .map(|(c, _)| c)
        } else {
            None
        };
        // An asker that cannot think of a new question guesses instead.
        let (guess, question) = match guess {
            Some(c) => (Some(c.clone()), prompts::twenty_guess_question(&c)),
            None => match new_question(asker, &left, &history, turn, config)? {
                Some(q) => (None, q),
                None => {
                    let (c, _) = likeliest(asker, &left, &history)?.expect("possibilities left");
                    (Some(c.clone()), prompts::twenty_guess_question(&c))
                }
            },
        };
        let p = p_yes(answerer, &[prompts::twenty_answer(concept, &question)])?[0];
        let bit = p >= 0.5;
        game.turns.push(Turn {
            question: question.clone(),
            bit,
            p_yes: p,
            guess: guess.clone(),
        });
        history.push((question, bit));
        if let Some(c) = guess {
            if bit {
                game.confirmed = Some(c);
                break;
            }
            left.retain(|x| *x != c);
            if left.is_empty() {
                break;
            }
        }
    }
    Ok(game)
}

/// The asker's likeliest possibility and its probability (a softmax over
/// the possibilities' scores as replies).
fn likeliest(
    asker: &mut dyn ChatModel,
    left: &[String],
    history: &[(String, bool)],
) -> Result<Option<(String, f64)>, QaError> {
    if left.is_empty() {
        return Ok(None);
    }
    let replies: Vec<String> = left
        .iter()
        .map(|c| prompts::twenty_guess_reply(c))
        .collect();
    let scores = asker.score_candidates(&prompts::twenty_guess(left, history), &replies)?;
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    let best = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    Ok(Some((
        left[best].clone(),
        (scores[best] - max).exp() / total,
    )))
}

/// A new question: greedy first; a repeat (or an empty line) is drawn
/// again, sampled with a seed, up to three times; `None` if none is new.
fn new_question(
    asker: &mut dyn ChatModel,
    left: &[String],
    history: &[(String, bool)],
    turn: usize,
    config: &TwentyConfig,
) -> Result<Option<String>, QaError> {
    let prompt = prompts::twenty_question(left, history);
    for attempt in 0..4u64 {
        let sampling = Sampling {
            max_tokens: config.question_tokens,
            temperature: if attempt == 0 { 0.0 } else { 0.8 },
            seed: turn as u64 * 10 + attempt,
            stop: vec!["\n".into()],
            ..Sampling::default()
        };
        let reply = asker.generate(&[(prompt.clone(), sampling)])?;
        let line = reply
            .first()
            .and_then(|r| r.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or_default()
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ')' || c == ' ');
        // A question ends at its first question mark ("Is it alive? No"
        // is the question "Is it alive?").
        let question = match line.find('?') {
            Some(end) => line[..=end].trim().to_string(),
            None if line.is_empty() => continue,
            None => format!("{}?", line.trim_end_matches(['.', '!', ' '])),
        };
        let repeated = history
            .iter()
            .any(|(q, _)| q.eq_ignore_ascii_case(&question));
        if question.len() > 1 && !repeated {
            return Ok(Some(question));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ModelError, Reply};

    /// Possibilities are numbers 0..n; "Is it at least K?" questions.
    struct Bisector {
        lo: usize,
        hi: usize,
    }

    fn number_in(text: &str) -> Option<usize> {
        let digits: String = text
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .to_string();
        digits.parse().ok()
    }

    impl ChatModel for Bisector {
        fn model_id(&self) -> [u8; 16] {
            [1; 16]
        }
        fn name(&self) -> &str {
            "bisector"
        }
        fn complete(&mut self, r: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
            // Narrow the range from the answers in the prompt.
            let text = &r[0].0[1].content;
            let (mut lo, mut hi) = (self.lo, self.hi);
            for line in text.lines() {
                if let Some(k) = line
                    .split("at least ")
                    .nth(1)
                    .and_then(|rest| number_in(rest.split('?').next()?))
                {
                    if line.ends_with("Yes") {
                        lo = lo.max(k);
                    } else if line.ends_with("No") {
                        hi = hi.min(k);
                    }
                }
            }
            Ok(vec![
                format!("Is it at least {}?", (lo + hi).div_ceil(2)).into()
            ])
        }
        fn p_yes(&mut self, _: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
            unreachable!("the asker never answers")
        }
        fn score_candidates(
            &mut self,
            conversation: &[Message],
            candidates: &[String],
        ) -> Result<Vec<f64>, ModelError> {
            // Consistent candidates score 0, others -100.
            let text = &conversation[1].content;
            Ok(candidates
                .iter()
                .map(|c| {
                    let n: usize = c.trim_start_matches('n').parse().unwrap();
                    let ok = text.lines().all(|line| {
                        match line
                            .split("at least ")
                            .nth(1)
                            .and_then(|r| number_in(r.split('?').next()?))
                        {
                            Some(k) if line.ends_with("Yes") => n >= k,
                            Some(k) if line.ends_with("No") => n < k,
                            _ => true,
                        }
                    });
                    if ok {
                        0.0
                    } else {
                        -100.0
                    }
                })
                .collect())
        }
    }

    /// Knows the secret number; answers "at least" and "Is it nK?" truly.
    struct Oracle;

    impl ChatModel for Oracle {
        fn model_id(&self) -> [u8; 16] {
            [2; 16]
        }
        fn name(&self) -> &str {
            "oracle"
        }
        fn complete(&mut self, _: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
            unreachable!()
        }
        fn p_yes(&mut self, c: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
            let secret: usize = c[0][0]
                .content
                .split("\"n")
                .nth(1)
                .and_then(|r| number_in(r.split('"').next()?))
                .unwrap();
            let q = &c[0][1].content;
            let yes = match q.split("at least ").nth(1) {
                Some(rest) => secret >= number_in(rest).unwrap(),
                None => number_in(q) == Some(secret),
            };
            Ok(vec![if yes { 0.95 } else { 0.05 }])
        }
        fn score_candidates(
            &mut self,
            _: &[Message],
            _: &[String],
        ) -> Result<Vec<f64>, ModelError> {
            unreachable!()
        }
    }

    #[test]
    fn a_bisecting_asker_finds_the_secret_in_about_log2_bits() {
        let candidates: Vec<String> = (0..16).map(|i| format!("n{i}")).collect();
        let config = TwentyConfig {
            guess_every: 1,
            guess_at: 0.9,
            ..TwentyConfig::default()
        };
        for secret in [0, 5, 11, 15] {
            let mut asker = Bisector { lo: 0, hi: 16 };
            let concept = format!("n{secret}");
            let game =
                play_twenty_questions(&mut asker, &mut Oracle, &concept, &candidates, &config)
                    .unwrap();
            assert!(game.found(), "{game:?}");
            // 4 bits of bisection (16 possibilities) and the confirming guess.
            assert!(game.bits() <= 6, "{} bits: {game:?}", game.bits());
            assert_eq!(
                game.turns.last().unwrap().guess.as_deref(),
                Some(concept.as_str())
            );
        }
    }

    #[test]
    fn the_game_stops_at_the_bit_budget_and_refuses_an_unknown_concept() {
        let candidates: Vec<String> = (0..16).map(|i| format!("n{i}")).collect();
        let config = TwentyConfig {
            max_bits: 2,
            guess_every: 100,
            ..TwentyConfig::default()
        };
        let mut asker = Bisector { lo: 0, hi: 16 };
        let game =
            play_twenty_questions(&mut asker, &mut Oracle, "n9", &candidates, &config).unwrap();
        assert_eq!(game.bits(), 2);
        // The last bit is always a guess.
        assert!(game.turns[1].guess.is_some());
        let err = play_twenty_questions(&mut asker, &mut Oracle, "n99", &candidates, &config);
        assert!(err.is_err());
    }
}
