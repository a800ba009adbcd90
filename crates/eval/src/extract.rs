//! Answer extraction and grading, as the standard harnesses do it.
//!
//! The final answer of a reply is, in this order of precedence:
//! 1. the rest of the last line with `Answer:` (any case; `Final answer:`,
//!    `**Answer:**` too; the next non-empty line if nothing follows it);
//! 2. the last `\boxed{...}` (nested braces allowed);
//! 3. the rest of the last `#### ` line (GSM8K);
//! 4. what follows the last "answer is" ("The answer is 39.", "the final
//!    answer is (B)"), to the end of its sentence.
//!
//! A `\boxed{}` inside the found text is unwrapped. Then, by kind of gold:
//! - numbers ([`extract_number`]): the first number in the found text (after
//!   its last `=`), else the last number in the whole reply (GSM8K's
//!   "flexible" rule); commas, `$`, `%` and a trailing `.` are ignored;
//!   `\frac{a}{b}` and `a/b` are fractions;
//! - option letters ([`extract_choice`]): the letter in the found text
//!   (`B`, `(B)`, `B)`, `B.`, `option B`), else an option's text in it, else
//!   the last `(X)` anywhere, else the letter or option text of the last
//!   line;
//! - yes/no ([`extract_yes_no`]): the first yes/no in the found text, else
//!   the last yes/no anywhere;
//! - text: the found text, else the last non-empty line.
//!
//! [`grade`] compares with the gold ([`Gold`]) and returns a [`Grade`],
//! which says which [`Rule`] found the answer and whether the reply was cut
//! off by the token limit ([`Grade::truncated`], passed in by the caller):
//! truncated replies are counted apart ([`Outcome::Truncated`]), not
//! silently graded wrong.

use serde::{Deserialize, Serialize};

use crate::bench::Gold;

/// Where an extracted answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// The last `Answer:` line.
    AnswerLine,
    /// The last `\boxed{...}`.
    Boxed,
    /// The last `#### ` line.
    Hashes,
    /// After the last "answer is".
    AnswerIs,
    /// The last number anywhere in the reply.
    LastNumber,
    /// The last `(X)` option letter, or yes/no, anywhere in the reply.
    LastMention,
    /// An option's text (in the found answer or the last line).
    OptionText,
    /// The last non-empty line.
    LastLine,
    /// A fenced code block (code replies).
    CodeBlock,
    /// The whole reply (code replies without a code block).
    WholeReply,
}

/// An answer taken out of a reply, and the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// The answer: a span of the reply, a number as digits (`1234.5`), an
    /// option letter (`B`), `yes` or `no`, or code.
    pub text: String,
    /// Where it was found.
    pub rule: Rule,
}

impl Extracted {
    fn new(text: impl Into<String>, rule: Rule) -> Self {
        Self {
            text: text.into(),
            rule,
        }
    }
}

/// The result of grading one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// Whether the extracted answer is correct.
    pub correct: bool,
    /// Whether the reply was cut off by the token limit (as the caller said).
    pub truncated: bool,
    /// What was extracted, if anything.
    pub extracted: Option<Extracted>,
}

/// How a [`Grade`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Correct (even if cut off afterwards).
    Correct,
    /// Complete and not correct.
    Wrong,
    /// Cut off by the token limit without a correct answer so far.
    Truncated,
}

impl Grade {
    /// Correct, wrong, or truncated (counted apart).
    pub fn outcome(&self) -> Outcome {
        match (self.correct, self.truncated) {
            (true, _) => Outcome::Correct,
            (false, false) => Outcome::Wrong,
            (false, true) => Outcome::Truncated,
        }
    }
}

/// Counts of [`Outcome`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Correct replies.
    pub correct: usize,
    /// Complete, wrong replies.
    pub wrong: usize,
    /// Replies cut off without a correct answer.
    pub truncated: usize,
}

impl Tally {
    /// Counts one grade.
    pub fn add(&mut self, grade: &Grade) {
        match grade.outcome() {
            Outcome::Correct => self.correct += 1,
            Outcome::Wrong => self.wrong += 1,
            Outcome::Truncated => self.truncated += 1,
        }
    }
    /// All replies counted.
    pub fn total(&self) -> usize {
        self.correct + self.wrong + self.truncated
    }
}

/// Grades `reply` against `gold`. `truncated`: the reply was cut off by the
/// token limit. `None` for [`Gold::Code`] (run it:
/// [`Sandbox::grade`](crate::sandbox::Sandbox::grade)) and
/// [`Gold::Ungradable`].
pub fn grade(gold: &Gold, reply: &str, truncated: bool) -> Option<Grade> {
    let (correct, extracted) = match gold {
        Gold::Number { value, .. } => {
            let e = extract_number(reply);
            let ok = e
                .as_ref()
                .and_then(|e| parse_number(&e.text))
                .is_some_and(|x| numbers_equal(x, *value));
            (ok, e)
        }
        Gold::Text(targets) => {
            let e = extract_text(reply);
            let ok = e
                .as_ref()
                .is_some_and(|e| targets.iter().any(|t| text_matches(&e.text, t)));
            (ok, e)
        }
        Gold::Choice {
            options,
            letter,
            also_correct,
        } => {
            let e = extract_choice(reply, options);
            let ok = e.as_ref().is_some_and(|e| {
                e.text
                    .chars()
                    .next()
                    .is_some_and(|c| c == *letter || also_correct.contains(&c))
            });
            (ok, e)
        }
        Gold::YesNo { yes, .. } => {
            let e = extract_yes_no(reply);
            let ok = e.as_ref().is_some_and(|e| (e.text == "yes") == *yes);
            (ok, e)
        }
        Gold::Code(_) | Gold::Ungradable(_) => return None,
    };
    Some(Grade {
        correct,
        truncated,
        extracted,
    })
}

// ------------------------------------------------------------------ the span

/// The final answer by the marker rules (1–4 in the module docs), trimmed,
/// with `**`, backticks and a surrounding `\boxed{}` removed; `None` if no
/// marker is found or it is followed by nothing.
pub fn extract_answer(reply: &str) -> Option<Extracted> {
    let lower = reply.to_ascii_lowercase();
    let clean = |s: &str| {
        let s = s.replace("**", "").replace('`', "");
        let s = s.trim();
        let s = match last_boxed(s) {
            Some(b) => b.trim().to_string(),
            None => s.to_string(),
        };
        let s = s.trim().trim_start_matches(':').trim();
        // "$42$" as LaTeX math.
        let s =
            if s.len() > 2 && s.starts_with('$') && s.ends_with('$') && s.matches('$').count() == 2
            {
                &s[1..s.len() - 1]
            } else {
                s
            };
        s.trim().to_string()
    };
    if let Some(i) = lower.rfind("answer:") {
        let rest = &reply[i + "answer:".len()..];
        let mut lines = rest.lines();
        let first = lines.next().unwrap_or("");
        let span = if clean(first).is_empty() {
            lines.find(|l| !clean(l).is_empty()).unwrap_or("")
        } else {
            first
        };
        let span = clean(span);
        if !span.is_empty() {
            return Some(Extracted::new(span, Rule::AnswerLine));
        }
    }
    if let Some(b) = last_boxed(reply) {
        let b = clean(b);
        if !b.is_empty() {
            return Some(Extracted::new(b, Rule::Boxed));
        }
    }
    if let Some(i) = reply.rfind("####") {
        let span = clean(reply[i + 4..].lines().next().unwrap_or(""));
        if !span.is_empty() {
            return Some(Extracted::new(span, Rule::Hashes));
        }
    }
    if let Some(i) = lower.rfind("answer is") {
        let rest = reply[i + "answer is".len()..].lines().next().unwrap_or("");
        // To the end of the sentence: a '.' followed by a space or the end,
        // unless it is a decimal point.
        let b = rest.as_bytes();
        let mut end = rest.len();
        for (j, &c) in b.iter().enumerate() {
            if matches!(c, b'.' | b'!' | b'?' | b';')
                && b.get(j + 1).is_none_or(|n| n.is_ascii_whitespace())
            {
                end = j;
                break;
            }
        }
        let span = clean(&rest[..end]);
        if !span.is_empty() {
            return Some(Extracted::new(span, Rule::AnswerIs));
        }
    }
    None
}

/// The content of the last `\boxed{...}` (or `\fbox{...}`), braces matched.
fn last_boxed(s: &str) -> Option<&str> {
    let i = s
        .rfind("\\boxed{")
        .map(|i| i + 7)
        .or_else(|| s.rfind("\\fbox{").map(|i| i + 6))?;
    let mut depth = 1usize;
    for (j, c) in s[i..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[i..i + j]);
                }
            }
            _ => {}
        }
    }
    None
}

fn last_line(reply: &str) -> Option<&str> {
    reply.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// The answer as text: the marker rules, else the last non-empty line.
pub fn extract_text(reply: &str) -> Option<Extracted> {
    extract_answer(reply).or_else(|| {
        last_line(reply).map(|l| Extracted::new(l.replace("**", "").trim(), Rule::LastLine))
    })
}

// ------------------------------------------------------------------- numbers

/// A number found in text: its value and its digits as written without
/// grouping commas (`-1234.5`).
#[derive(Debug, Clone, PartialEq)]
struct Num {
    value: f64,
    text: String,
}

/// Every number in `s`, in order: an optional minus (when not preceded by
/// a letter or digit), digits with optional `,` thousands groups, an
/// optional decimal part. `−` (U+2212) counts as a minus.
fn numbers(s: &str) -> Vec<Num> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !c[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let neg = start > 0
            && matches!(c[start - 1], '-' | '−')
            && (start < 2 || !c[start - 2].is_alphanumeric());
        let mut digits = String::new();
        while i < c.len() && c[i].is_ascii_digit() {
            digits.push(c[i]);
            i += 1;
        }
        // Thousands groups: ",ddd" not followed by another digit.
        while i + 3 < c.len()
            && c[i] == ','
            && c[i + 1..i + 4].iter().all(char::is_ascii_digit)
            && c.get(i + 4).is_none_or(|d| !d.is_ascii_digit())
        {
            digits.extend(&c[i + 1..i + 4]);
            i += 4;
        }
        if i + 1 < c.len() && c[i] == '.' && c[i + 1].is_ascii_digit() {
            digits.push('.');
            i += 1;
            while i < c.len() && c[i].is_ascii_digit() {
                digits.push(c[i]);
                i += 1;
            }
        }
        let text = if neg { format!("-{digits}") } else { digits };
        if let Ok(value) = text.parse::<f64>() {
            out.push(Num { value, text });
        }
    }
    out
}

/// The text as one number: `$1,234.50`, `-7`, `15%`, `42.`, `3/4`,
/// `\frac{3}{4}`; `None` if it is anything more.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s
        .trim()
        .trim_start_matches('$')
        .trim_end_matches('.')
        .trim_end_matches('%');
    let t = t.replace('−', "-");
    if let Some(f) = fraction(&t) {
        return Some(f);
    }
    let plain: String = t.chars().filter(|&c| c != ',' && c != '$').collect();
    if plain.is_empty()
        || !plain
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return None;
    }
    plain.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `\frac{a}{b}`, `\dfrac{a}{b}`, `\tfrac{a}{b}` or `a/b` as a/b.
fn fraction(t: &str) -> Option<f64> {
    let t = t.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r.trim()),
        None => (false, t),
    };
    let (a, b) = if let Some(rest) = ["\\frac{", "\\dfrac{", "\\tfrac{"]
        .iter()
        .find_map(|p| t.strip_prefix(p))
    {
        let (a, rest) = rest.split_once('}')?;
        let b = rest.strip_prefix('{')?.strip_suffix('}')?;
        (a, b)
    } else {
        t.split_once('/')?
    };
    let num = |x: &str| -> Option<f64> {
        let x = x.trim();
        (!x.is_empty() && x.chars().all(|c| c.is_ascii_digit() || c == '.'))
            .then(|| x.parse().ok())?
    };
    let v = num(a)? / num(b)?;
    v.is_finite().then_some(if neg { -v } else { v })
}

/// A numeric answer: the found text as one number, else its first number
/// (after its last `=`), else the last number in the whole reply
/// ([`Rule::LastNumber`]). The text is the number without grouping commas.
pub fn extract_number(reply: &str) -> Option<Extracted> {
    if let Some(span) = extract_answer(reply) {
        if let Some(v) = parse_number(&span.text) {
            return Some(Extracted::new(format_number(v, &span.text), span.rule));
        }
        let after_eq = span.text.rsplit('=').next().unwrap_or(&span.text);
        if let Some(n) = numbers(after_eq).into_iter().next() {
            return Some(Extracted::new(n.text, span.rule));
        }
    }
    numbers(reply)
        .pop()
        .map(|n| Extracted::new(n.text, Rule::LastNumber))
}

/// The digits of a number parsed from `raw`: as written (without `$`, `,`,
/// `%`, a trailing `.`) when that parses, else the value.
fn format_number(v: f64, raw: &str) -> String {
    let t: String = raw
        .trim()
        .trim_end_matches('.')
        .chars()
        .filter(|&c| !matches!(c, ',' | '$' | '%'))
        .collect();
    let t = t.replace('−', "-");
    if t.parse::<f64>().is_ok() {
        t
    } else {
        v.to_string()
    }
}

/// Numeric equality with relative tolerance 1e-6 (absolute below 1).
pub fn numbers_equal(x: f64, gold: f64) -> bool {
    (x - gold).abs() <= 1e-6 * gold.abs().max(1.0)
}

// ---------------------------------------------------------------------- text

/// Normalization for exact match: lowercase; `**`, backticks and quotes
/// removed; leading and trailing punctuation stripped; the articles a, an,
/// the dropped (as SQuAD does); whitespace collapsed. Inner punctuation
/// stays, so `05/01/2021` and `3.5` keep their meaning.
pub fn normalize(s: &str) -> String {
    let s = s.to_lowercase().replace("**", "");
    let s: String = s
        .chars()
        .map(|c| {
            if matches!(c, '`' | '"' | '“' | '”') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = s
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '$' && c != '%'))
        .filter(|w| !w.is_empty() && !matches!(*w, "a" | "an" | "the"))
        .collect();
    words.join(" ")
}

/// Whether an answer matches a target: numerically if both are numbers,
/// else after [`normalize`].
pub fn text_matches(answer: &str, target: &str) -> bool {
    match (parse_number(answer), parse_number(target)) {
        (Some(a), Some(t)) => numbers_equal(a, t),
        _ => {
            let n = normalize(answer);
            !n.is_empty() && n == normalize(target)
        }
    }
}

// ---------------------------------------------------------- multiple choice

/// The letter of an option in `text` alone (`B`, `(B)`, `B)`, `B.`, `B:`,
/// `option B`, `B) text`, `(B) text`), within `range`.
fn leading_letter(text: &str, range: char) -> Option<char> {
    let in_range = |c: char| ('A'..=range).contains(&c);
    let mut t = text.trim().trim_start_matches(['*', '[']).trim();
    for p in ["option", "choice", "letter"] {
        if t.len() > p.len() && t.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)) {
            t = t[p.len()..].trim_start();
        }
    }
    let c: Vec<char> = t.chars().take(4).collect();
    let free = |x: Option<&char>| x.is_none_or(|x| !x.is_alphanumeric());
    match c.as_slice() {
        ['(', l, ')', ..] if in_range(l.to_ascii_uppercase()) => Some(l.to_ascii_uppercase()),
        [l, ')' | '.' | ':' | ']', ..] if in_range(l.to_ascii_uppercase()) => {
            // "a." could be the article only before a space; "B." is a letter.
            (l.is_ascii_uppercase() || c.len() == 2 || c[1] == ')').then(|| l.to_ascii_uppercase())
        }
        [l, rest @ ..] if l.is_ascii_uppercase() && in_range(*l) && free(rest.first()) => Some(*l),
        [l] if in_range(l.to_ascii_uppercase()) => Some(l.to_ascii_uppercase()),
        _ => None,
    }
}

/// The last `(X)` with X within `range`.
fn last_paren(text: &str, range: char) -> Option<char> {
    let c: Vec<char> = text.chars().collect();
    c.windows(3)
        .rev()
        .find(|w| w[0] == '(' && ('A'..=range).contains(&w[1]) && w[2] == ')')
        .map(|w| w[1])
}

/// The option whose text `text` is, or the only option whose text it
/// contains (as whole words; the longest if one contains another).
fn option_in(text: &str, options: &[String]) -> Option<usize> {
    let t = normalize(text);
    if t.is_empty() {
        return None;
    }
    // Only the options that can be lettered.
    let norm: Vec<String> = options.iter().take(26).map(|o| normalize(o)).collect();
    if let Some(i) = norm.iter().position(|o| *o == t) {
        return Some(i);
    }
    let padded = format!(" {t} ");
    let hits: Vec<usize> = (0..norm.len())
        .filter(|&i| !norm[i].is_empty() && padded.contains(&format!(" {} ", norm[i])))
        .collect();
    let longest = hits.iter().copied().max_by_key(|&i| norm[i].len())?;
    // Others must be contained in the longest ("blue" in "light blue").
    hits.iter()
        .all(|&i| norm[longest].contains(&norm[i]))
        .then_some(longest)
}

/// A multiple-choice answer: an option letter (see the module docs).
/// `options` in lettered order; when empty, letters A–J are accepted and
/// there is no option text to match.
pub fn extract_choice(reply: &str, options: &[String]) -> Option<Extracted> {
    let range = if options.is_empty() {
        'J'
    } else {
        char::from(b'A' + (options.len().min(26) as u8) - 1)
    };
    let letter = |c: char, rule| Some(Extracted::new(c.to_string(), rule));
    let by_text = |t: &str| {
        option_in(t, options).and_then(|i| letter(char::from(b'A' + i as u8), Rule::OptionText))
    };
    if let Some(span) = extract_answer(reply) {
        if let Some(c) = leading_letter(&span.text, range) {
            return letter(c, span.rule);
        }
        if let Some(e) = by_text(&span.text) {
            return Some(e);
        }
        if let Some(c) = last_paren(&span.text, range) {
            return letter(c, span.rule);
        }
        // A standalone capital letter in the found text: "it is D."
        let c: Vec<char> = span.text.chars().collect();
        let free = |j: Option<&char>| j.is_none_or(|x| !x.is_alphanumeric());
        if let Some(i) = (0..c.len()).find(|&i| {
            ('A'..=range).contains(&c[i])
                && free(i.checked_sub(1).and_then(|j| c.get(j)))
                && free(c.get(i + 1))
                && !(c[i] == 'A'
                    && c.get(i + 1) == Some(&' ')
                    && c.get(i + 2).is_some_and(|x| x.is_lowercase()))
        }) {
            return letter(c[i], span.rule);
        }
    }
    if let Some(c) = last_paren(reply, range) {
        return letter(c, Rule::LastMention);
    }
    let line = last_line(reply)?;
    if let Some(c) = leading_letter(line, range)
        .filter(|_| line.chars().filter(|c| c.is_alphanumeric()).count() <= 1 || line.len() <= 3)
    {
        return letter(c, Rule::LastLine);
    }
    by_text(line)
}

// -------------------------------------------------------------------- yes/no

fn yes_no_words(text: &str) -> impl DoubleEndedIterator<Item = bool> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter_map(|w| {
        match w.to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    })
}

/// A yes/no answer (`yes` or `no`): the first yes/no word in the found
/// text, else the last one in the reply ([`Rule::LastMention`]).
pub fn extract_yes_no(reply: &str) -> Option<Extracted> {
    let word = |y: bool| if y { "yes" } else { "no" };
    if let Some(span) = extract_answer(reply) {
        if let Some(y) = yes_no_words(&span.text).next() {
            return Some(Extracted::new(word(y), span.rule));
        }
    }
    yes_no_words(reply)
        .next_back()
        .map(|y| Extracted::new(word(y), Rule::LastMention))
}

// ---------------------------------------------------------------------- code

/// The code of a reply: the first fenced block tagged `python` or `py`,
/// else the first fenced block, else (no fence) the whole reply. An
/// unclosed fence (a reply cut off) runs to the end.
pub fn extract_code(reply: &str) -> Extracted {
    let mut blocks: Vec<(String, String)> = Vec::new(); // (tag, code)
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in reply.lines() {
        let t = line.trim_start();
        if let Some(tag) = t.strip_prefix("```") {
            match open.take() {
                Some((tag, code)) => blocks.push((tag, code.join("\n"))),
                None => open = Some((tag.trim().to_ascii_lowercase(), Vec::new())),
            }
        } else if let Some((_, code)) = open.as_mut() {
            code.push(line);
        }
    }
    if let Some((tag, code)) = open {
        blocks.push((tag, code.join("\n")));
    }
    let python = blocks
        .iter()
        .find(|(tag, _)| tag == "python" || tag == "py" || tag == "python3");
    match python.or(blocks.first()) {
        Some((_, code)) => Extracted::new(format!("{code}\n"), Rule::CodeBlock),
        None => Extracted::new(reply, Rule::WholeReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(reply: &str) -> Option<(String, Rule)> {
        extract_number(reply).map(|e| (e.text, e.rule))
    }

    #[test]
    fn numbers_table() {
        use Rule::*;
        let table: &[(&str, Option<(&str, Rule)>)] = &[
            (
                "We add them: 17 + 22 = 39.\nAnswer: 39",
                Some(("39", AnswerLine)),
            ),
            ("So the total is \\boxed{39}.", Some(("39", Boxed))),
            ("\\boxed{\\frac{1}{2}} is it", Some(("0.5", Boxed))),
            ("The answer is 39.", Some(("39", AnswerIs))),
            (
                "Thus the final answer is $1,234.50. Done",
                Some(("1234.50", AnswerIs)),
            ),
            (
                "Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72\n#### 72",
                Some(("72", Hashes)),
            ),
            (
                "Answer: 39 apples, since 3 x 13 = 39",
                Some(("39", AnswerLine)),
            ),
            ("Answer: 3 + 4 = 7", Some(("7", AnswerLine))),
            ("**Answer:** $42$", Some(("42", AnswerLine))),
            ("Final Answer:\n\n  -12\n", Some(("-12", AnswerLine))),
            (
                "First 12, then 30, so 1,000 in total.",
                Some(("1000", LastNumber)),
            ),
            (
                "It is 5. Then 6 more. Answer: unsure",
                Some(("6", LastNumber)),
            ),
            ("x-3 and 2-1", Some(("1", LastNumber))),
            ("The result is -4.", Some(("-4", LastNumber))),
            ("I don't know.", None),
            ("", None),
        ];
        for (reply, want) in table {
            let want = want.map(|(t, r)| (t.to_string(), r));
            assert_eq!(num(reply), want, "{reply:?}");
        }
    }

    #[test]
    fn boxed_nested_and_last() {
        assert_eq!(
            last_boxed("\\boxed{1} and \\boxed{\\frac{2}{3}}"),
            Some("\\frac{2}{3}")
        );
        assert_eq!(last_boxed("\\boxed{a{b}c} x"), Some("a{b}c"));
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
        assert_eq!(extract_answer("\\boxed{x{y}").map(|e| e.rule), None);
    }

    #[test]
    fn parse_numbers() {
        assert_eq!(parse_number("$1,234.50"), Some(1234.5));
        assert_eq!(parse_number("42."), Some(42.0));
        assert_eq!(parse_number("15%"), Some(15.0));
        assert_eq!(parse_number("−3"), Some(-3.0));
        assert_eq!(parse_number("3/4"), Some(0.75));
        assert_eq!(parse_number("-\\frac{1}{4}"), Some(-0.25));
        assert_eq!(parse_number("1/0"), None);
        assert_eq!(parse_number("39 apples"), None);
        assert_eq!(parse_number("inf"), None);
        assert!(numbers_equal(0.1 + 0.2, 0.3));
        assert!(!numbers_equal(3.5, 35.0));
    }

    #[test]
    fn text_and_normalize() {
        assert_eq!(normalize("  The Eiffel  Tower! "), "eiffel tower");
        assert_eq!(normalize("\"05/01/2021\"."), "05/01/2021");
        assert_eq!(normalize("**Paris**"), "paris");
        let g = Gold::Text(vec!["Eiffel Tower".into(), "La tour Eiffel".into()]);
        assert!(
            grade(&g, "Answer: the eiffel tower.", false)
                .unwrap()
                .correct
        );
        assert!(grade(&g, "Hmm.\nla tour eiffel", false).unwrap().correct);
        assert!(!grade(&g, "Answer: Louvre", false).unwrap().correct);
        let g = Gold::Text(vec!["1000".into()]);
        assert!(grade(&g, "Answer: 1,000", false).unwrap().correct);
    }

    #[test]
    fn choices_table() {
        let opts: Vec<String> = ["red ball.", "blue ball.", "light blue ball.", "green ball."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        use Rule::*;
        let table: &[(&str, Option<(&str, Rule)>)] = &[
            ("Thinking...\nAnswer: B", Some(("B", AnswerLine))),
            ("Answer: (C) light blue ball.", Some(("C", AnswerLine))),
            ("Answer: b)", Some(("B", AnswerLine))),
            ("Answer: D. green", Some(("D", AnswerLine))),
            ("**Answer: (A)**", Some(("A", AnswerLine))),
            ("Answer: option C", Some(("C", AnswerLine))),
            ("Answer: Alice has the green ball.", Some(("D", OptionText))),
            ("Answer: the light blue ball", Some(("C", OptionText))),
            ("Answer: it is D.", Some(("D", AnswerLine))),
            ("The answer is (B).", Some(("B", AnswerIs))),
            ("So \\boxed{C}", Some(("C", Boxed))),
            (
                "I pick (A), no wait, (D) is right.",
                Some(("D", LastMention)),
            ),
            ("Let me see.\nB", Some(("B", LastLine))),
            ("So she ends with the red ball.", Some(("A", OptionText))),
            ("Answer: (E)", None),
            ("Answer: none of them", None),
            ("no idea", None),
        ];
        for (reply, want) in table {
            let got = extract_choice(reply, &opts).map(|e| (e.text, e.rule));
            assert_eq!(got, want.map(|(t, r)| (t.to_string(), r)), "{reply:?}");
        }
        let g = Gold::Choice {
            options: opts.clone(),
            letter: 'B',
            also_correct: vec![],
        };
        assert!(grade(&g, "Answer: B", false).unwrap().correct);
        assert!(grade(&g, "Answer: blue ball", false).unwrap().correct);
        assert!(!grade(&g, "Answer: C", false).unwrap().correct);
        // Without options (task files): A–J, no text.
        assert_eq!(extract_choice("Answer: (H)", &[]).unwrap().text, "H");
    }

    #[test]
    fn yes_no() {
        let g = |yes| Gold::YesNo {
            yes,
            explanation: None,
        };
        assert!(
            grade(&g(true), "Frost happens in December.\nAnswer: Yes.", false)
                .unwrap()
                .correct
        );
        assert!(
            grade(&g(false), "So the answer is no.", false)
                .unwrap()
                .correct
        );
        assert!(
            grade(&g(false), "Yes, it rains... but no.", false)
                .unwrap()
                .correct
        );
        assert!(
            !grade(&g(true), "Answer: No, because yes", false)
                .unwrap()
                .correct
        );
        assert_eq!(extract_yes_no("Maybe."), None);
    }

    #[test]
    fn truncation_is_counted_apart() {
        let g = Gold::Number {
            value: 39.0,
            text: "39".into(),
        };
        let cut = grade(&g, "First we add 17 and", true).unwrap();
        assert_eq!(cut.outcome(), Outcome::Truncated);
        assert!(!cut.correct && cut.truncated);
        let done = grade(&g, "Answer: 39\nAnd then I keep talk", true).unwrap();
        assert_eq!(done.outcome(), Outcome::Correct);
        let wrong = grade(&g, "Answer: 40", false).unwrap();
        assert_eq!(wrong.outcome(), Outcome::Wrong);
        let mut t = Tally::default();
        for x in [&cut, &done, &wrong] {
            t.add(x);
        }
        assert_eq!((t.correct, t.wrong, t.truncated, t.total()), (1, 1, 1, 3));
        assert_eq!(grade(&Gold::Ungradable(None), "x", false), None);
    }

    #[test]
    fn no_panics_on_odd_text() {
        let nasty = "Opté…\nAnswer:é (Ä) the answer isé. \\boxed{\\frac{é}{2} #### −1,2é3 option é (B)\n```py\né";
        let opts = vec!["é".to_string(), "ä b".to_string()];
        for (i, _) in nasty.char_indices() {
            for t in [&nasty[..i], &nasty[i..]] {
                let _ = extract_number(t);
                let _ = extract_choice(t, &opts);
                let _ = extract_choice(t, &[]);
                let _ = extract_yes_no(t);
                let _ = extract_text(t);
                let _ = extract_code(t);
                let _ = parse_number(t);
                let _ = normalize(t);
            }
        }
    }

    #[test]
    fn code_blocks() {
        let r = "Here:\n```\nx = 0\n```\nand\n```python\ndef f():\n    return 1\n```\n";
        assert_eq!(
            extract_code(r),
            Extracted::new("def f():\n    return 1\n", Rule::CodeBlock)
        );
        assert_eq!(extract_code("```py\nreturn 2").text, "return 2\n");
        assert_eq!(extract_code("    return 3\n").rule, Rule::WholeReply);
    }
}
