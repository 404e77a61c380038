//! gRPC adapter for the answer service.

use tonic::{Request, Response, Status};
use zhengna_platform::ApiError;
use zhengna_platform::identity;
use zhengna_proto::answer::v1 as pb;

use crate::kb::{Item, Kb};
use crate::normalize::normalize;

/// Longest question accepted (the widget input allows 300 characters).
const MAX_QUESTION_CHARS: usize = 300;

pub struct AnswerApi {
    kb: Kb,
}

impl AnswerApi {
    pub fn new(kb: Kb) -> Self {
        Self { kb }
    }
}

const NO_ANSWER_TEXT: &str = "抱歉，暂时没有找到与您的问题完全对应的答案。您可以换一种说法再问一次，也可以点击“留言”留下您的问题，或点击“转人工”咨询税务人员。";

fn answer_from(item: Item) -> pb::AskResponse {
    let steps = pb::answer_block::Block::Steps(pb::StepsBlock { steps: item.facts.0.clone(), ..Default::default() });
    let citations = item.basis.0.iter().map(|b| pb::Citation { text: b.clone(), ..Default::default() }).collect();
    let text = item.facts.0.iter().enumerate().map(|(i, f)| format!("{}. {f}", i + 1)).collect::<Vec<_>>().join("\n");
    pb::AskResponse {
        decision: pb::Decision::Answer as i32,
        text,
        answer: Some(pb::Answer {
            item_id: item.id.to_string(),
            catalog_id: item.catalog_id.unwrap_or_default(),
            standard_question: item.question,
            blocks: vec![pb::AnswerBlock { block: Some(steps) }],
            citations,
            topic: item.topic,
            ..Default::default()
        }),
        confidence: 1.0,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl pb::answer_service_server::AnswerService for AnswerApi {
    async fn ask(&self, request: Request<pb::AskRequest>) -> Result<Response<pb::AskResponse>, Status> {
        identity::caller(&request)?;
        let r = request.into_inner();
        let question = r.question.trim();
        if question.is_empty() {
            return Err(ApiError::invalid("question", "must not be empty", "请输入您要咨询的问题。").into());
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(ApiError::invalid(
                "question",
                "must be at most 300 characters",
                "问题最多300个字，请精简后再提问。",
            )
            .into());
        }
        let today = zhengna_platform::time::shanghai_today();
        let reply = match self.kb.exact(&normalize(question), today).await? {
            Some(item) => answer_from(item),
            None => pb::AskResponse {
                decision: pb::Decision::NoAnswer as i32,
                text: NO_ANSWER_TEXT.into(),
                offer_leave_message: true,
                suggest_transfer: true,
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }
}

/// KB administration, moderation and speech arrive with the answering issue; until then
/// every method answers UNIMPLEMENTED naming it.
pub struct Later;

#[tonic::async_trait]
impl pb::knowledge_admin_service_server::KnowledgeAdminService for Later {}
#[tonic::async_trait]
impl pb::moderation_service_server::ModerationService for Later {}
#[tonic::async_trait]
impl pb::moderation_admin_service_server::ModerationAdminService for Later {}
#[tonic::async_trait]
impl pb::speech_service_server::SpeechService for Later {}
