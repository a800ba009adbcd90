//! How an [`AnswerRequest`] travels in a [`Frame::Questions`].
//!
//! `problem` is the problem text (never the reference), `draft` the asker's
//! current answer only when the answerer is shown it (so a blind view costs
//! no bytes for it), and `view` the typed [`View`]: whether the answerer
//! sees the current answer, whether this is the verdict question, and the
//! task. The reply is one [`Frame::PackedBits`] with the same
//! `first_question_id` and one bit per question.

use tenbits_messaging::{Frame, TaskKind, View};
use tenbits_qa::prompts::VERDICT_QUESTION;
use tenbits_qa::{AnswerRequest, Problem, Task};

use crate::config::MAX_QUESTIONS;

fn task_kind(task: Task) -> TaskKind {
    match task {
        Task::Code => TaskKind::Code,
        Task::MultipleChoice => TaskKind::MultipleChoice,
        Task::ShortAnswer => TaskKind::ShortAnswer,
    }
}

fn task(kind: TaskKind) -> Task {
    match kind {
        TaskKind::Code => Task::Code,
        TaskKind::MultipleChoice => Task::MultipleChoice,
        TaskKind::ShortAnswer => Task::ShortAnswer,
    }
}

/// The view of a request, as the wire carries it.
pub fn view(request: &AnswerRequest) -> View {
    View {
        sees_answer: request.sees_answer,
        verdict: request.verdict,
        task: task_kind(request.problem.task),
    }
}

/// The `Questions` frame of a request.
pub fn request_frame(session: u64, first_question_id: u32, request: &AnswerRequest) -> Frame {
    Frame::Questions {
        session,
        first_question_id,
        problem: request.problem.text.clone(),
        draft: request.shown_answer().map(String::from),
        questions: request.questions.clone(),
        view: view(request),
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
        let View {
            sees_answer,
            verdict,
            task: kind,
        } = *view;
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
            problem: Problem::new(task(kind), problem.clone()),
            current_answer: draft.clone().unwrap_or_default(),
            questions: questions.clone(),
            sees_answer,
            verdict,
        };
        Ok((*session, *first_question_id, request))
    })())
}
