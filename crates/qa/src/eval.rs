//! Grading of short and multiple-choice answers, and aggregation.

use serde::{Deserialize, Serialize};

use crate::Task;

/// The final answer in a reply: the rest of the line after the last
/// "Answer:" (any case), else the last non-empty line; trimmed.
pub fn extract_answer(text: &str) -> &str {
    let lower = text.to_ascii_lowercase();
    let found = match lower.rfind("answer:") {
        Some(i) => text[i + 7..].lines().next().unwrap_or(""),
        None => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
    };
    found.trim()
}

/// Lowercase; punctuation to spaces; articles (a, an, the) dropped;
/// whitespace collapsed.
pub fn normalize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = s
        .split_whitespace()
        .filter(|w| !["a", "an", "the"].contains(w))
        .collect();
    words.join(" ")
}

/// A number, ignoring ",", "$", "%" and a trailing ".".
fn number(s: &str) -> Option<f64> {
    s.trim()
        .trim_end_matches('.')
        .replace([',', '$', '%'], "")
        .parse()
        .ok()
}

/// Whether two short answers match: numerically if both are numbers, else
/// after [`normalize`].
pub fn answers_match(a: &str, b: &str) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * y.abs().max(1.0),
        _ => normalize(a) == normalize(b),
    }
}

/// The option letter (A–J) of a multiple-choice reply. In the
/// [`extract_answer`] part: the part itself if it is one letter (any case),
/// else its last "(X)", else (only after an "Answer:") its first standalone
/// capital letter; failing those, the last "(X)" anywhere.
pub fn extract_choice(text: &str) -> Option<char> {
    let is_option = |c: char| ('A'..='J').contains(&c);
    let last_paren = |s: &str| {
        let chars: Vec<char> = s.chars().collect();
        let w = chars
            .windows(3)
            .rev()
            .find(|w| w[0] == '(' && is_option(w[1]) && w[2] == ')');
        w.map(|w| w[1])
    };
    let part =
        extract_answer(text).trim_matches(|c: char| !c.is_alphanumeric() && c != '(' && c != ')');
    let chars: Vec<char> = part.chars().filter(|c| c.is_alphanumeric()).collect();
    if let [c] = chars[..] {
        let c = c.to_ascii_uppercase();
        return is_option(c).then_some(c);
    }
    let chars: Vec<char> = part.chars().collect();
    let free = |j: Option<&char>| j.is_none_or(|c| !c.is_alphanumeric());
    let alone =
        |i: usize| free(i.checked_sub(1).and_then(|j| chars.get(j))) && free(chars.get(i + 1));
    let marked = text.to_ascii_lowercase().contains("answer:");
    last_paren(part)
        .or_else(|| {
            marked
                .then(|| (0..chars.len()).find(|&i| is_option(chars[i]) && alone(i)))
                .flatten()
                .map(|i| chars[i])
        })
        .or_else(|| last_paren(text))
}

/// Grades `response` against `gold` (a bare answer or a reply in the same
/// format). `None` for code, which needs tests to run.
pub fn grade(task: Task, response: &str, gold: &str) -> Option<bool> {
    match task {
        Task::Code => None,
        Task::MultipleChoice => {
            Some(extract_choice(response).is_some_and(|c| Some(c) == extract_choice(gold)))
        }
        Task::ShortAnswer => Some(answers_match(
            extract_answer(response),
            extract_answer(gold),
        )),
    }
}

/// Results aggregated over problems: the small model's draft, its revision
/// after the protocol, and the large model alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Problems recorded.
    pub problems: usize,
    /// Correct drafts.
    pub draft_correct: usize,
    /// Correct revisions.
    pub revision_correct: usize,
    /// Correct answers of the large model alone.
    pub large_correct: usize,
    /// Bits sent, over all problems.
    pub bits: f64,
}

impl Tally {
    /// Records one problem.
    pub fn record(&mut self, draft: bool, revision: bool, large: bool, bits: f64) {
        self.problems += 1;
        self.draft_correct += usize::from(draft);
        self.revision_correct += usize::from(revision);
        self.large_correct += usize::from(large);
        self.bits += bits;
    }

    fn rate(&self, n: usize) -> f64 {
        n as f64 / self.problems.max(1) as f64
    }
    /// Accuracy of the drafts.
    pub fn draft_accuracy(&self) -> f64 {
        self.rate(self.draft_correct)
    }
    /// Accuracy of the revisions.
    pub fn revision_accuracy(&self) -> f64 {
        self.rate(self.revision_correct)
    }
    /// Accuracy of the large model.
    pub fn large_accuracy(&self) -> f64 {
        self.rate(self.large_correct)
    }
    /// Mean bits per problem.
    pub fn mean_bits(&self) -> f64 {
        self.bits / self.problems.max(1) as f64
    }
    /// Gap recovered, (revision − draft) / (large − draft); `None` when the
    /// large model is no better or worse than the draft.
    pub fn gap_recovered(&self) -> Option<f64> {
        let gap = self.large_correct as f64 - self.draft_correct as f64;
        (gap != 0.0).then(|| (self.revision_correct as f64 - self.draft_correct as f64) / gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers() {
        assert_eq!(
            extract_answer("Let me think.\n6*7=42.\nAnswer: 42.\n"),
            "42."
        );
        assert_eq!(extract_answer("so\nthe result is 7\n\n"), "the result is 7");
        assert!(grade(Task::ShortAnswer, "ANSWER: 1,000", "1000.0").unwrap());
        assert!(grade(
            Task::ShortAnswer,
            "Answer: The Eiffel Tower!",
            "eiffel tower"
        )
        .unwrap());
        assert!(!grade(Task::ShortAnswer, "Answer: 3.5", "35").unwrap());
        assert!(!grade(Task::ShortAnswer, "Answer: Paris", "Lyon").unwrap());
        assert_eq!(grade(Task::Code, "x", "x"), None);
    }

    #[test]
    fn choice_letters() {
        assert_eq!(extract_choice("Thinking...\nAnswer: (C) blue"), Some('C'));
        assert_eq!(extract_choice("answer: b"), Some('B'));
        assert_eq!(extract_choice("Answer: it is D."), Some('D'));
        assert_eq!(
            extract_choice("I pick (A), no wait, (E) is right."),
            Some('E')
        );
        assert_eq!(extract_choice("Answer: none"), None);
        assert!(grade(Task::MultipleChoice, "Answer: B", "(B)").unwrap());
        assert!(!grade(Task::MultipleChoice, "Answer: B", "C").unwrap());
        assert!(!grade(Task::MultipleChoice, "no idea", "no idea").unwrap());
    }

    #[test]
    fn tally_gap_recovered() {
        let mut t = Tally::default();
        assert_eq!(t.gap_recovered(), None);
        t.record(false, true, true, 10.0);
        t.record(false, false, true, 10.0);
        t.record(true, true, true, 4.0);
        t.record(false, false, false, 6.0);
        assert_eq!(
            (
                t.draft_accuracy(),
                t.revision_accuracy(),
                t.large_accuracy()
            ),
            (0.25, 0.5, 0.75)
        );
        assert_eq!(t.gap_recovered(), Some(0.5));
        assert_eq!(t.mean_bits(), 7.5);
    }
}
