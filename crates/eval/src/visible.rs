//! The examples a code problem shows: calls with their results in the
//! prompt's docstring (`f(x) == y`, `f(x) ➞ y`, `>>> f(x)` then `y`), which
//! the receiver has and can run its own candidates on.
//!
//! [`visible_examples`] finds them; [`example_program`] makes one program
//! per (candidate, example) for the [`Sandbox`](crate::Sandbox), which
//! passes when the call returns the shown result. No hidden test is read.
//!
//! ```
//! use tenbits_eval::visible_examples;
//!
//! let prompt = "def double(x):\n    \"\"\"Doubles x.\n    >>> double(2)\n    4\n    double(3) == 6\n    \"\"\"\n";
//! let found = visible_examples(prompt, "double");
//! assert_eq!(found.len(), 2);
//! assert_eq!((found[0].call.as_str(), found[0].expected.as_str()), ("double(2)", "4"));
//! assert_eq!((found[1].call.as_str(), found[1].expected.as_str()), ("double(3)", "6"));
//! ```

use serde::{Deserialize, Serialize};

/// A call the prompt shows, with the result it shows, as Python source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The call, e.g. `add([4, 2, 6, 7])`.
    pub call: String,
    /// The result shown, e.g. `2`.
    pub expected: String,
}

/// What follows a call to say what it returns, longest first so `==>` is
/// not read as `==`.
const SEPARATORS: [&str; 8] = [
    "==>",
    "==",
    "=>",
    "➞",
    "->",
    "should return",
    "returns",
    "=",
];

/// The calls of `entry` with results in `prompt`'s docstring, each call
/// once, in order. A result is the rest of the line after a separator
/// (without a final full stop), or for a doctest (`>>> f(x)`) the next
/// non-blank line. Arguments and result must read as literals (no names
/// but `True`, `False` and `None`, no comparison or assignment), which
/// leaves out definitions such as `tri(n) = 1 + n / 2` and prose.
pub fn visible_examples(prompt: &str, entry: &str) -> Vec<Example> {
    let doc = prompt
        .split_once("\"\"\"")
        .or_else(|| prompt.split_once("'''"))
        .map_or(prompt, |(_, doc)| doc);
    let lines: Vec<&str> = doc.lines().collect();
    let mut found: Vec<Example> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(entry).map(|i| i + from) {
            from = at + entry.len();
            // A whole name: not the tail of a longer one.
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let after = line[from..].trim_start();
            if !after.starts_with('(') {
                continue;
            }
            let open = line.len() - after.len();
            let Some(close) = closing_paren(line, open) else {
                continue;
            };
            let call = &line[at..close];
            let rest = line[close..].trim();
            let expected = if rest.is_empty() && line.trim_start().starts_with(">>>") {
                lines[n + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
            } else {
                SEPARATORS
                    .iter()
                    .find_map(|sep| rest.strip_prefix(sep))
                    .map(|r| r.trim().trim_end_matches('.').trim().to_string())
            };
            let args = &line[open + 1..close - 1];
            match expected {
                Some(e)
                    if !e.is_empty()
                        && literal_like(args)
                        && literal_like(&e)
                        && !found.iter().any(|f| f.call == call) =>
                {
                    found.push(Example {
                        call: call.to_string(),
                        expected: e,
                    });
                }
                _ => {}
            }
            from = close;
        }
    }
    found
}

/// Whether `text` reads as Python literals: outside quoted strings, no
/// name but `True`, `False` and `None`, and none of `=`, `<`, `>`.
fn literal_like(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let mut escaped = false;
                loop {
                    match chars.next() {
                        None => return false,
                        Some('\\') if !escaped => escaped = true,
                        Some(q) if q == c && !escaped => break,
                        Some(_) => escaped = false,
                    }
                }
            }
            '=' | '<' | '>' => return false,
            // A number, with any letters it holds (`1e-5`, `0x1f`).
            c if c.is_ascii_digit() => {
                while chars
                    .next_if(|d| d.is_alphanumeric() || *d == '.')
                    .is_some()
                {}
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut name = String::from(c);
                while let Some(d) = chars.next_if(|d| d.is_alphanumeric() || *d == '_') {
                    name.push(d);
                }
                if !["True", "False", "None"].contains(&name.as_str()) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The byte index just past the bracket closing the one at `open`, with
/// quoted strings skipped; `None` if the line ends first.
fn closing_paren(line: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + c.len_utf8());
                }
            }
            _ => {}
        }
    }
    None
}

/// A program that passes when `program` (a candidate, the whole function)
/// returns `example.expected` for `example.call`: equal, or for floats
/// equal to a relative 1e-6.
pub fn example_program(program: &str, example: &Example) -> String {
    format!(
        "{program}\n\n{SAME}\nassert __tenbits_same({}, {})\n",
        example.call, example.expected
    )
}

/// Equality as a reader of the docstring means it (floats close, lists and
/// tuples alike).
const SAME: &str = "def __tenbits_same(a, b):
    import math
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(__tenbits_same(x, y) for x, y in zip(a, b))
    return a == b
";

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(prompt: &str, entry: &str) -> Vec<(String, String)> {
        visible_examples(prompt, entry)
            .into_iter()
            .map(|e| (e.call, e.expected))
            .collect()
    }

    #[test]
    fn finds_each_way_humaneval_shows_a_result() {
        let prompt = r#"
def f(lst):
    """Does things.
    Examples:
        f([4, 2, 6, 7]) ==> 2
    f('a(b)') == True
    f({"a": 1}) should return False.
    f([1, 5]) => "NO"
    f(3) ➞ [1, 2]
    for f(7, 34, 12) == 34
    >>> f(3)
    [3, 5, 7]
    f(3) == 9
    g(2) == 3
    my_f(2) == 3
    f is a function, f(x) is its value
    f(n) = 1 + n / 2, if n is even
    f(abc) == True
    f(2) = 1 + (2 / 2) = 2
    >>> f(5)
    >>> f(6)
    f(-1.5e-3, None) == 0x1f
    """
"#;
        assert_eq!(
            pairs(prompt, "f"),
            [
                ("f([4, 2, 6, 7])", "2"),
                ("f('a(b)')", "True"),
                ("f({\"a\": 1})", "False"),
                ("f([1, 5])", "\"NO\""),
                ("f(3)", "[1, 2]"),
                ("f(7, 34, 12)", "34"),
                ("f(-1.5e-3, None)", "0x1f"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_prompt_without_results_shows_no_examples() {
        let prompt = "def f(x):\n    \"\"\"Input: arr = [1], k = 3\n    Output: [1]\n    \"\"\"\n";
        assert!(visible_examples(prompt, "f").is_empty());
        assert!(visible_examples("", "f").is_empty());
        // A call cut off by the line's end is skipped, not mis-read.
        assert!(visible_examples("\"\"\"\n f([1,\n 2]) == 3\n", "f").is_empty());
    }

    #[test]
    fn the_program_asserts_the_shown_result() {
        let e = Example {
            call: "f(2)".into(),
            expected: "4".into(),
        };
        let p = example_program("def f(x):\n    return 2 * x", &e);
        assert!(p.starts_with("def f(x):\n    return 2 * x\n"));
        assert!(p.ends_with("assert __tenbits_same(f(2), 4)\n"));
    }
}
