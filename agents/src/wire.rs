//! How an [`AnswerRequest`] travels in a [`Frame::Questions`].
//!
//! `problem` is the problem text (never the reference), `draft` the asker's
//! current answer only when the answerer is shown it (so a blind view costs
//! no bytes for it), and `view` these bit flags:
//!
//! | bits | meaning |
//! |------|---------|
//! | 0    | [`VIEW_SEES_ANSWER`]: the answerer sees the current answer |
//! | 1    | [`VIEW_VERDICT`]: the accept/reject question |
//! | 8–9  | the task: 0 code, 1 multiple choice, 2 short answer ([`VIEW_TASK_SHIFT`]) |
//!
//! Other bits must be zero. The reply is one [`Frame::PackedBits`] with
//! the same `first_question_id` and one bit per question.

use tenbits_messaging::Frame;
use tenbits_qa::prompts::VERDICT_QUESTION;
use tenbits_qa::{AnswerRequest, Problem, Task};

use crate::config::MAX_QUESTIONS;

/// View flag: the answerer sees the current answer.
pub const VIEW_SEES_ANSWER: u32 = 1;
/// View flag: the request is the verdict question.
pub const VIEW_VERDICT: u32 = 2;
/// Shift of the 2-bit task code in the view flags.
pub const VIEW_TASK_SHIFT: u32 = 8;
const KNOWN_BITS: u32 = VIEW_SEES_ANSWER | VIEW_VERDICT | (3 << VIEW_TASK_SHIFT);

fn task_code(task: Task) -> u32 {
    match task {
        Task::Code => 0,
        Task::MultipleChoice => 1,
        Task::ShortAnswer => 2,
    }
}

/// The view flags of a request.
pub fn view_flags(request: &AnswerRequest) -> u32 {
    u32::from(request.sees_answer)
        | u32::from(request.verdict) << 1
        | task_code(request.problem.task) << VIEW_TASK_SHIFT
}

/// The `Questions` frame of a request.
pub fn request_frame(session: u64, first_question_id: u32, request: &AnswerRequest) -> Frame {
    Frame::Questions {
        session,
        first_question_id,
        problem: request.problem.text.clone(),
        draft: request.shown_answer().map(String::from),
        questions: request.questions.clone(),
        view: view_flags(request),
    }
}

/// A request decoded from a `Questions` frame, with its session and first
/// question id; `Err` says why the request is bad. Other frames are `None`.
#[allow(clippy::type_complexity)]
pub fn decode_request(frame: &Frame) -> Option<Result<(u64, u32, AnswerRequest), String>> {
    let Frame::Questions {
        session,
        first_question_id,
        problem,
        draft,
        questions,
        view,
    } = frame
    else {
        return None;
    };
    Some((|| {
        if view & !KNOWN_BITS != 0 {
            return Err(format!("unknown view flags {view:#x}"));
        }
        let task = match view >> VIEW_TASK_SHIFT & 3 {
            0 => Task::Code,
            1 => Task::MultipleChoice,
            2 => Task::ShortAnswer,
            t => return Err(format!("unknown task code {t}")),
        };
        let (sees_answer, verdict) = (view & VIEW_SEES_ANSWER != 0, view & VIEW_VERDICT != 0);
        if questions.is_empty() || questions.len() > MAX_QUESTIONS {
            return Err(format!(
                "{} questions; 1 to {MAX_QUESTIONS} allowed",
                questions.len()
            ));
        }
        if verdict && questions.as_slice() != [VERDICT_QUESTION] {
            return Err("a verdict request holds exactly the verdict question".into());
        }
        if (sees_answer || verdict) != draft.is_some() {
            return Err("the current answer is sent exactly when the answerer sees it".into());
        }
        if first_question_id
            .checked_add(questions.len() as u32)
            .is_none()
        {
            return Err("question ids overflow".into());
        }
        let request = AnswerRequest {
            problem: Problem::new(task, problem.clone()),
            current_answer: draft.clone().unwrap_or_default(),
            questions: questions.clone(),
            sees_answer,
            verdict,
        };
        Ok((*session, *first_question_id, request))
    })())
}
