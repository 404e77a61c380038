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

/// Answer blocks from a draft (paragraph, steps, guide, note), or the catalog facts as steps.
fn blocks(item: &Item) -> Vec<pb::AnswerBlock> {
    use pb::answer_block::Block;
    let drafted: Vec<pb::AnswerBlock> = item
        .blocks
        .0
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|b| {
            let text = || b["text"].as_str().unwrap_or_default().to_owned();
            let items = || -> Vec<String> {
                b["items"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let title = b["title"].as_str().unwrap_or_default().to_owned();
            let block = match b["type"].as_str()? {
                "paragraph" | "note" => Block::Paragraph(pb::ParagraphBlock { text: text() }),
                "steps" => Block::Steps(pb::StepsBlock { title, steps: items() }),
                "guide" => Block::GuideCard(pb::GuideCardBlock { title, materials: items(), ..Default::default() }),
                _ => return None,
            };
            Some(pb::AnswerBlock { block: Some(block) })
        })
        .collect();
    if !drafted.is_empty() {
        return drafted;
    }
    vec![pb::AnswerBlock {
        block: Some(Block::Steps(pb::StepsBlock { steps: item.facts.0.clone(), ..Default::default() })),
    }]
}

fn citations(item: &Item) -> Vec<pb::Citation> {
    let drafted: Vec<pb::Citation> = item
        .citations
        .0
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| pb::Citation {
            article_id: c["article_id"].as_str().unwrap_or_default().to_owned(),
            text: c["text"].as_str().unwrap_or_default().to_owned(),
            ..Default::default()
        })
        .collect();
    if !drafted.is_empty() {
        return drafted;
    }
    item.basis.0.iter().map(|b| pb::Citation { text: b.clone(), ..Default::default() }).collect()
}

fn answer_from(item: Item, related: Vec<(uuid::Uuid, String, String)>) -> pb::AskResponse {
    let text = if item.summary.is_empty() {
        item.facts.0.iter().enumerate().map(|(i, f)| format!("{}. {f}", i + 1)).collect::<Vec<_>>().join("\n")
    } else {
        item.summary.clone()
    };
    pb::AskResponse {
        decision: pb::Decision::Answer as i32,
        text,
        answer: Some(pb::Answer {
            item_id: item.id.to_string(),
            blocks: blocks(&item),
            citations: citations(&item),
            catalog_id: item.catalog_id.clone().unwrap_or_default(),
            standard_question: item.question.clone(),
            topic: item.topic.clone(),
            ..Default::default()
        }),
        // 猜你想问: the items readers of this answer usually want next.
        suggestions: related
            .into_iter()
            .map(|(id, _, question)| pb::SuggestedQuestion { item_id: id.to_string(), question, ..Default::default() })
            .collect(),
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
            Some(item) => {
                let related = self.kb.questions(&item.related).await?;
                answer_from(item, related)
            }
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
