//! Every prompt of the protocol, in one place, and the parser of the
//! numbered lists models answer with.
//!
//! Any change to a template's wording must bump [`PROMPT_VERSION`]: the
//! version is recorded in every [`Transcript`](crate::Transcript), and a test
//! pins [`fingerprint`] (a hash of all templates) to the version.

use serde::{Deserialize, Serialize};

use crate::Message;

/// Version of the wording below; bump on any change.
///
/// 3: questions are cut at their '?', non-questions and repeats dropped.
/// 4: the revision of a program asks for the program (in a code block),
/// and lists each answered question once: under 3 the 0.5B answered the
/// numbered replies with "1. Yes 2. Yes ..." in all 80 HumanEval sessions.
pub const PROMPT_VERSION: u32 = 4;

/// The version at which the templates a `task`'s session renders last
/// changed: what an evaluation result records, so that a task whose wording
/// a later version left alone keeps its results (version 4 changed code's
/// revision only). [`task_fingerprint`] pins it per task.
pub fn task_prompt_version(task: Task) -> u32 {
    match task {
        Task::Code => 4,
        Task::MultipleChoice | Task::ShortAnswer => 3,
    }
}

/// The kind of problem, which picks the solver's system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Write a program.
    Code,
    /// Pick one lettered option.
    MultipleChoice,
    /// A number, word or short phrase.
    ShortAnswer,
}

/// Padding when a model writes fewer questions than asked for.
pub const FALLBACK_QUESTION: &str = "Is the answer correct?";
/// The accept/reject question of the iterative variant.
pub const VERDICT_QUESTION: &str = "Is the proposed answer correct?";
/// Section label of the reference (gold) answer in the answerer's view.
pub const REFERENCE_LABEL: &str = "Reference answer";
/// Section label of the answerer's own solution in its view.
pub const SOLUTION_LABEL: &str = "Your own solution";

const QUESTIONER_SYSTEM: &str = "You are checking a proposed answer to a problem. You cannot see \
the correct answer, but an expert who knows it will answer each of your questions with a single \
Yes or No.";
const ANSWERER_SYSTEM: &str =
    "You answer questions about a problem truthfully, with a single word: Yes or No.";
const LISTER_SYSTEM: &str = "You are an expert problem solver.";

/// The solver's system prompt for a task (drafts, own solutions, revisions).
pub fn system(task: Task) -> &'static str {
    match task {
        Task::Code => {
            "You are an expert programmer. Solve the task and reply with the complete solution \
in a single code block."
        }
        Task::MultipleChoice => {
            "You are an expert problem solver. Think step by step, briefly, then end with a line \
'Answer: X' where X is the letter of the correct option."
        }
        Task::ShortAnswer => {
            "You are an expert problem solver. Think step by step, briefly, then end with a line \
'Answer: ...' giving only the final answer (a number, word or short phrase)."
        }
    }
}

/// A solving conversation (the draft, the answerer's own solution, candidate
/// scoring), optionally with a hint section (the reference answer).
pub fn solve(task: Task, problem: &str, reference: Option<&str>) -> Vec<Message> {
    let user = match reference {
        Some(r) => format!("{problem}\n\n{REFERENCE_LABEL}:\n{r}"),
        None => problem.to_string(),
    };
    vec![Message::system(system(task)), Message::user(user)]
}

/// Question generation: the problem, the current answer and the questions
/// already answered, then "Ask `n` yes/no questions ... numbered list".
pub fn questions(
    problem: &str,
    answer: &str,
    history: &[(String, bool)],
    n: usize,
) -> Vec<Message> {
    let before = if history.is_empty() {
        String::new()
    } else {
        format!("Questions already answered:\n{}\n\n", qa_lines(history))
    };
    let user = format!(
        "Problem:\n{problem}\n\nProposed answer:\n{answer}\n\n{before}Write {n} yes/no questions \
that check whether the proposed answer is correct. Write one question per line, numbered 1. to \
{n}., each ending with a question mark."
    );
    vec![Message::system(QUESTIONER_SYSTEM), Message::user(user)]
}

/// The answerer's (or the asker's predicting) view of one yes/no question:
/// the problem, optionally what it knows (`(label, text)`: reference or own
/// solution), optionally the proposed answer, and the question.
pub fn yes_no(
    problem: &str,
    knowledge: Option<(&str, &str)>,
    answer: Option<&str>,
    question: &str,
) -> Vec<Message> {
    let mut user = format!("Problem:\n{problem}\n\n");
    if let Some((label, text)) = knowledge {
        user += &format!("{label}:\n{text}\n\n");
    }
    if let Some(a) = answer {
        user += &format!("Proposed answer:\n{a}\n\n");
    }
    user += &format!("Question: {question}\nAnswer Yes or No.");
    vec![Message::system(ANSWERER_SYSTEM), Message::user(user)]
}

/// Revision: the solving conversation, the asker's current answer, and the
/// questions answered so far.
pub fn revise(task: Task, problem: &str, answer: &str, history: &[(String, bool)]) -> Vec<Message> {
    let mut m = solve(task, problem, None);
    m.push(Message::assistant(answer));
    let request = match task {
        // A numbered list of replies invites a numbered list back; a
        // bulleted one, once per question, with the program asked for by
        // name, gets a program.
        Task::Code => {
            let mut once: Vec<&(String, bool)> = Vec::new();
            for qa in history {
                if !once.contains(&qa) {
                    once.push(qa);
                }
            }
            let replies: Vec<String> = once
                .iter()
                .map(|(q, a)| format!("- {q} {}", yes_no_word(*a)))
                .collect();
            format!(
                "An expert who knows the correct solution answered your yes/no questions about your \
code:\n{}\n\nNow write the complete corrected program (or the same program, if the replies say it \
is right) in a single ```python code block. Reply with the code block only.",
                replies.join("\n")
            )
        }
        Task::MultipleChoice | Task::ShortAnswer => format!(
            "An expert who knows the correct answer replied to your yes/no questions:\n{}\n\nTaking \
these replies into account, solve the problem again and give your final answer in the same format.",
            qa_lines(history)
        ),
    };
    m.push(Message::user(request));
    m
}

fn yes_no_word(bit: bool) -> &'static str {
    if bit {
        "Yes"
    } else {
        "No"
    }
}

/// Candidate listing for bisection: up to `k` plausible final answers.
pub fn candidates(problem: &str, k: usize) -> Vec<Message> {
    vec![
        Message::system(LISTER_SYSTEM),
        Message::user(format!(
            "{problem}\n\nList up to {k} different plausible final answers, most likely first, as \
a numbered list. Give only the answers, without explanations."
        )),
    ]
}

/// How a candidate is scored as the assistant's reply to [`solve`].
pub fn candidate_reply(candidate: &str) -> String {
    format!("Answer: {candidate}")
}

fn qa_lines(history: &[(String, bool)]) -> String {
    let line =
        |(i, (q, a)): (usize, &(String, bool))| format!("{}. {q} {}", i + 1, yes_no_word(*a));
    history
        .iter()
        .enumerate()
        .map(line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// FNV-1a hash of every template rendered with fixed arguments; pinned to
/// [`PROMPT_VERSION`] by a test.
pub fn fingerprint() -> u64 {
    let mut all = vec![solve(Task::Code, "P", Some("R"))];
    for task in [Task::MultipleChoice, Task::ShortAnswer] {
        all.push(solve(task, "P", None));
    }
    all.extend(answering_templates());
    all.push(revise(Task::ShortAnswer, "P", "A", &sample_history()));
    all.push(revise(Task::Code, "P", "A", &sample_history()));
    all.extend(candidate_templates());
    fnv(&all)
}

/// FNV-1a hash of the templates a session of `task` renders (its own
/// solving and revision prompts and every shared one); pinned to
/// [`task_prompt_version`] by a test.
pub fn task_fingerprint(task: Task) -> u64 {
    let mut all = vec![solve(task, "P", None), solve(task, "P", Some("R"))];
    all.extend(answering_templates());
    all.push(revise(task, "P", "A", &sample_history()));
    all.extend(candidate_templates());
    fnv(&all)
}

fn sample_history() -> [(String, bool); 1] {
    [("Is it?".to_string(), true)]
}

/// The questions and yes/no templates every task shares, rendered with
/// fixed arguments.
fn answering_templates() -> Vec<Vec<Message>> {
    let h = sample_history();
    vec![
        questions("P", "A", &h, 7),
        questions("P", "A", &[], 7),
        yes_no(
            "P",
            Some((REFERENCE_LABEL, "R")),
            Some("A"),
            FALLBACK_QUESTION,
        ),
        yes_no("P", Some((SOLUTION_LABEL, "S")), None, VERDICT_QUESTION),
    ]
}

/// The candidate listing every task shares.
fn candidate_templates() -> Vec<Vec<Message>> {
    vec![
        candidates("P", 5),
        vec![Message::assistant(candidate_reply("C"))],
    ]
}

fn fnv(templates: &[Vec<Message>]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for m in templates.iter().flatten() {
        for b in format!("{:?}\u{0}{}\u{0}", m.role, m.content).bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Strips a list marker ("1.", "1)", "(1)", "1:", "Q1:", "Question 1.",
/// "-", "*", "•", "+"); `None` if the line has none.
fn strip_marker(line: &str) -> Option<&str> {
    let s = line.trim();
    for bullet in ["- ", "* ", "• ", "+ "] {
        if let Some(rest) = s.strip_prefix(bullet) {
            return Some(rest.trim());
        }
    }
    let t = s
        .strip_prefix("Question")
        .or_else(|| s.strip_prefix(['Q', 'q']))
        .unwrap_or(s);
    let t = t.trim_start();
    let t = t.strip_prefix('(').unwrap_or(t);
    let rest = t.trim_start_matches(|c: char| c.is_ascii_digit());
    if rest.len() == t.len() {
        return None;
    }
    let rest = rest.strip_prefix(['.', ')', ':'])?;
    // "3.5 is ..." is a number, not a marker.
    (!rest.starts_with(|c: char| c.is_ascii_digit())).then(|| rest.trim())
}

/// The items of a list: the non-empty marked lines, marker stripped, if any
/// line has a marker (so a preamble such as "Here are my questions:" is
/// dropped); otherwise every non-empty line.
pub fn parse_list(text: &str) -> Vec<String> {
    let marked: Vec<String> = text
        .lines()
        .filter_map(strip_marker)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if !marked.is_empty() {
        return marked;
    }
    text.lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Words a yes/no question starts with; a marked list item that starts
/// with one is a question even when the model dropped its '?'.
const QUESTION_WORDS: [&str; 17] = [
    "is", "are", "does", "do", "did", "can", "could", "should", "would", "will", "was", "were",
    "has", "have", "had", "may", "might",
];

/// The question in a list item: the text up to and including its first
/// '?' (anything after it, such as the asker answering itself, is
/// dropped), or the whole item plus '?' when it is marked and starts with a
/// yes/no question word; `None` for anything else ("Yes", statements).
fn as_question(item: &str, marked: bool) -> Option<String> {
    if let Some(end) = item.find('?') {
        let q = item[..=end].trim();
        return (q.len() > 1).then(|| q.to_string());
    }
    let first = item.split_whitespace().next()?.to_ascii_lowercase();
    let asks = marked && QUESTION_WORDS.contains(&first.as_str());
    asks.then(|| format!("{}?", item.trim_end_matches(['.', ':', ' '])))
}

/// Exactly `n` questions from a model's reply.
///
/// Each list item is cut after its first '?'; an item without one counts
/// only if it is marked and starts like a yes/no question ("Is", "Does",
/// ...), and gets the '?' back. Anything else ("Yes", statements) is
/// dropped, and so are repeats (compared without case and punctuation).
/// Missing questions are padded with [`FALLBACK_QUESTION`]; extra ones are
/// dropped.
pub fn parse_questions(text: &str, n: usize) -> Vec<String> {
    let marked = text.lines().any(|l| strip_marker(l).is_some());
    let mut seen = std::collections::HashSet::new();
    let mut items: Vec<String> = parse_list(text)
        .iter()
        .filter_map(|item| as_question(item, marked))
        .filter(|q| seen.insert(crate::eval::normalize(q)))
        .collect();
    items.resize(n, FALLBACK_QUESTION.to_string());
    items
}

/// Version of the twenty-questions templates ([`twenty_question`],
/// [`twenty_answer`], [`twenty_guess`]), a scenario apart from the QA
/// session's prompts; pinned by its own fingerprint.
pub const TWENTY_QUESTIONS_PROMPT_VERSION: u32 = 2;

/// The asker's turn in twenty questions: the possibilities, the questions
/// and answers so far, and the request for one new question.
pub fn twenty_question(candidates: &[String], history: &[(String, bool)]) -> Vec<Message> {
    let so_far = if history.is_empty() {
        String::new()
    } else {
        format!("Questions so far:\n{}\n", qa_lines(history))
    };
    vec![
        Message::system(
            "We are playing twenty questions. You ask yes/no questions to find the secret.",
        ),
        Message::user(format!(
            "The secret is one of these: {}.\n{so_far}Ask one new yes/no question that splits the \
possibilities that are left, such as \"Is it alive?\" or \"Is it bigger than a person?\". \
Do not repeat a question. Reply with the question only.",
            candidates.join(", ")
        )),
    ]
}

/// The answerer's turn: it knows the secret and answers one question.
pub fn twenty_answer(concept: &str, question: &str) -> Vec<Message> {
    vec![
        Message::system(format!(
            "We are playing twenty questions. The secret is \"{concept}\". Answer each question \
about the secret truthfully with Yes or No."
        )),
        Message::user(question.to_string()),
    ]
}

/// The asker's guess: which possibility the answers point to (candidates
/// are scored as replies: [`twenty_guess_reply`]).
pub fn twenty_guess(candidates: &[String], history: &[(String, bool)]) -> Vec<Message> {
    vec![
        Message::system(
            "We are playing twenty questions. You ask yes/no questions to find the secret.",
        ),
        Message::user(format!(
            "The secret is one of these: {}.\nQuestions so far:\n{}\nWhich one is the secret? \
Reply with its name only.",
            candidates.join(", "),
            qa_lines(history)
        )),
    ]
}

/// How a candidate is scored as the reply to [`twenty_guess`].
pub fn twenty_guess_reply(candidate: &str) -> String {
    candidate.to_string()
}

/// The question a guess is asked as.
pub fn twenty_guess_question(candidate: &str) -> String {
    format!("Is the secret \"{candidate}\"?")
}

/// FNV-1a hash of the twenty-questions templates; pinned to
/// [`TWENTY_QUESTIONS_PROMPT_VERSION`] by a test.
pub fn twenty_fingerprint() -> u64 {
    let (c, h) = (
        ["a".to_string(), "b".to_string()],
        [("Is it?".to_string(), true)],
    );
    let mut all = vec![
        twenty_question(&c, &h),
        twenty_question(&c, &[]),
        twenty_answer("a", &twenty_guess_question("b")),
        twenty_guess(&c, &h),
    ];
    all.push(vec![Message::assistant(twenty_guess_reply("a"))]);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for m in all.iter().flatten() {
        for b in format!("{:?}\u{0}{}\u{0}", m.role, m.content).bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_questions_templates_are_pinned_to_their_version() {
        // Bump TWENTY_QUESTIONS_PROMPT_VERSION with the fingerprint.
        assert_eq!(
            (TWENTY_QUESTIONS_PROMPT_VERSION, twenty_fingerprint()),
            (2, 0x4b50_e97d_443a_d8be)
        );
    }

    #[test]
    fn templates_are_pinned_to_the_version() {
        // A failure here means a template changed: bump PROMPT_VERSION and
        // update the pinned fingerprint together.
        assert_eq!((PROMPT_VERSION, fingerprint()), (4, 0x5c2a_61d1_74ee_fa1d));
    }

    #[test]
    fn each_task_s_templates_are_pinned_to_its_version() {
        // A failure here means the templates of a task changed: set its
        // task_prompt_version to the new PROMPT_VERSION and update the
        // pinned fingerprint together. Short-answer and multiple-choice
        // sessions render under version 4 what they did under version 3:
        // the same hashes come from 38c97c2's (version 3's) templates.
        let pinned = [Task::Code, Task::MultipleChoice, Task::ShortAnswer]
            .map(|t| (t, task_prompt_version(t), task_fingerprint(t)));
        assert_eq!(
            pinned,
            [
                (Task::Code, 4, 0x45ea_0e46_d48a_4330),
                (Task::MultipleChoice, 3, 0x200a_44a4_3452_5469),
                (Task::ShortAnswer, 3, 0x8503_abfe_be12_fa22),
            ]
        );
        assert!(task_prompt_version(Task::Code) <= PROMPT_VERSION);
    }

    #[test]
    fn a_program_s_revision_asks_for_the_program_and_lists_each_reply_once() {
        let history = [
            ("Does it handle an empty list?".to_string(), false),
            (FALLBACK_QUESTION.to_string(), true),
            (FALLBACK_QUESTION.to_string(), true),
        ];
        let code = revise(Task::Code, "P", "```python\npass\n```", &history);
        let request = &code.last().unwrap().content;
        assert!(request
            .contains("- Does it handle an empty list? No\n- Is the answer correct? Yes\n\n"));
        assert_eq!(request.matches(FALLBACK_QUESTION).count(), 1);
        assert!(request.contains("in a single ```python code block"));
        assert!(!request.contains("1. "), "no numbered list to mimic");
        // Other tasks keep version 3's wording.
        let short = revise(Task::ShortAnswer, "P", "A", &history);
        assert!(short
            .last()
            .unwrap()
            .content
            .contains("1. Does it handle an empty list? No\n2. "));
    }

    #[test]
    fn parses_every_marker_style() {
        let text = "Here are the questions:\n1. Is it even?\n2) Is it prime\n(3) Is it > 3?\n\
                    Q4: Is it 42?\nQuestion 5. Is it odd?\n- Is it small?\n* Is it big?\n\
                    • Is it real?\n6.\n7:Is it 7?\n";
        let q = parse_questions(text, 12);
        assert_eq!(
            q[..9],
            [
                "Is it even?",
                "Is it prime?",
                "Is it > 3?",
                "Is it 42?",
                "Is it odd?",
                "Is it small?",
                "Is it big?",
                "Is it real?",
                "Is it 7?"
            ]
        );
        assert_eq!(q[9..], [FALLBACK_QUESTION; 3]);
        assert_eq!(parse_questions(text, 2), ["Is it even?", "Is it prime?"]);
    }

    #[test]
    fn questions_are_cut_checked_and_deduplicated() {
        let text = "1. Is the proposed answer correct? Yes, the answer is correct.\n\
                    2. Yes\n3. The answer is 390.\n4. is 15% of 260 equal to 39? (I think so)\n\
                    5. Is the proposed answer correct?\n6. IS 15% OF 260 EQUAL TO 39?\n\
                    7. Does the draft add the tax\n8. ?\n";
        assert_eq!(
            parse_questions(text, 5),
            [
                "Is the proposed answer correct?",
                "is 15% of 260 equal to 39?",
                "Does the draft add the tax?",
                FALLBACK_QUESTION,
                FALLBACK_QUESTION,
            ]
        );
    }

    #[test]
    fn unmarked_lines_need_a_question_mark() {
        let text = "Sure.\n\n  Is x even?  \n3.5 is not a marker?\nQuick question?\nThe end";
        assert_eq!(
            parse_questions(text, 4),
            [
                "Is x even?",
                "3.5 is not a marker?",
                "Quick question?",
                FALLBACK_QUESTION
            ]
        );
        assert_eq!(parse_list("alpha\n\nbeta\n"), ["alpha", "beta"]);
        assert!(parse_questions("", 0).is_empty());
    }
}
