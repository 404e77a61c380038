//! gRPC adapter for the answer service.

use tonic::{Request, Response, Status};
use zhengna_platform::ApiError;
use zhengna_platform::identity::{self, Caller};
use zhengna_proto::answer::v1 as pb;

use std::sync::Arc;

use crate::SharedEngine;
use crate::engine::{Candidate, Context, Decision, Engine};
use crate::favourites::{Favourites, parse_item};
use crate::feedback::FeedbackStore;
use crate::harassment::{Guard, Screened};
use crate::kb::{Interception, Item, Kb};
use crate::moderation::{self, Direction, Moderator, Verdict};
use crate::moderation_admin::CheckCounter;
use crate::popular::{Popular, Ranked};

/// Longest question accepted (the widget input allows 300 characters).
const MAX_QUESTION_CHARS: usize = 300;

pub struct AnswerApi {
    catalog: crate::catalog::SharedCatalog,
    kb: Kb,
    shared: SharedEngine,
    favourites: Favourites,
    feedback: FeedbackStore,
    checkpoint: Checkpoint,
    popular: Popular,
    unresolved_rounds: i32,
}

/// The moderation side of the answer service: the word lists (replaced whole when a
/// supervisor changes them), the harassment ladder and the count of texts checked.
#[derive(Clone)]
pub struct Checkpoint {
    pub moderator: SharedModerator,
    pub guard: Guard,
    pub checks: CheckCounter,
}

pub type SharedModerator = Arc<std::sync::RwLock<Arc<Moderator>>>;

impl Checkpoint {
    pub fn moderator(&self) -> Arc<Moderator> {
        match self.moderator.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The interception record of a text the word lists masked or blocked.
fn words_interception<'a>(
    checked: &'a moderation::Checked,
    direction: &'a str,
    conversation_id: &'a str,
    sender_id: &'a str,
    text: &'a str,
) -> Interception<'a> {
    Interception {
        id: uuid::Uuid::now_v7(),
        direction,
        verdict: if checked.verdict == Verdict::Block { "block" } else { "mask" },
        conversation_id,
        sender_id,
        text,
        hits: &checked.hits,
        emotion: format!("{:?}", checked.emotion),
        signals: Vec::new(),
    }
}

impl AnswerApi {
    pub fn new(
        pool: sqlx::PgPool,
        shared: SharedEngine,
        checkpoint: Checkpoint,
        catalog: crate::catalog::SharedCatalog,
        unresolved_rounds: i32,
    ) -> Self {
        Self {
            catalog,
            kb: Kb::new(pool.clone()),
            shared,
            favourites: Favourites::new(pool.clone()),
            feedback: FeedbackStore::new(pool.clone()),
            checkpoint,
            popular: Popular::new(pool),
            unresolved_rounds,
        }
    }

    /// Counts the round, logs the reply and gives it its id (feedback refers to it).
    async fn finish(
        &self,
        caller: &zhengna_platform::Caller,
        r: &pb::AskRequest,
        logged_question: String,
        decision: &str,
        mut reply: pb::AskResponse,
    ) -> Result<Response<pb::AskResponse>, Status> {
        self.count_round(&r.conversation_id, &mut reply).await?;
        let who = match caller {
            zhengna_platform::Caller::Taxpayer(t) => t.tax_id.clone(),
            zhengna_platform::Caller::Agent(_) => caller.subject(),
        };
        let event = pb::QuestionAsked {
            conversation_id: r.conversation_id.trim().chars().take(64).collect(),
            taxpayer_id: who.clone(),
            // As moderation let it through.
            question: logged_question,
            source: r.source,
            decision: reply.decision,
            item_id: reply.answer.as_ref().map(|a| a.item_id.clone()).unwrap_or_default(),
            catalog_id: reply.answer.as_ref().map(|a| a.catalog_id.clone()).unwrap_or_default(),
            topic_id: reply.answer.as_ref().map(|a| a.topic.clone()).unwrap_or_default(),
            confidence: reply.confidence,
            emotion: reply.emotion,
            suggest_transfer: reply.suggest_transfer,
            ..Default::default()
        };
        let id = self.kb.log_reply(decision, event).await?;
        reply.reply_id = id.to_string();
        metrics::counter!("zhengna_answer_decisions_total", "decision" => decision.to_owned()).increment(1);
        Ok(Response::new(reply))
    }

    /// The bot's reply to a question moderation let through, and its decision's name.
    async fn respond(
        &self,
        caller: &Caller,
        question: &str,
        today: chrono::NaiveDate,
        checked: &moderation::Checked,
    ) -> Result<(pb::AskResponse, &'static str), ApiError> {
        let tags = profile_tags(caller);
        let ctx = Context { today, tags: &tags };
        if checked.verdict == Verdict::Block {
            let reply = pb::AskResponse {
                decision: pb::Decision::NoAnswer as i32,
                text: moderation::BLOCKED_NOTICE.into(),
                emotion: checked.emotion as i32,
                ..Default::default()
            };
            return Ok((reply, "blocked"));
        }
        let agitated = checked.emotion == pb::Emotion::Angry;
        if crate::engine::transfer_intent(question) {
            let reply = pb::AskResponse {
                decision: pb::Decision::Transfer as i32,
                text: TRANSFER_TEXT.into(),
                suggest_transfer: true,
                confidence: 1.0,
                ..Default::default()
            };
            return Ok((reply, "transfer"));
        }
        if let Some((node_id, node)) = self.catalog().trees.for_input(question) {
            return Ok((tree_reply(node_id, node, 0), "clarify"));
        }
        let engine = self.engine();
        let decision = engine.decide(question, &ctx);
        let confidence = decision.confidence();
        let no_answer = |text: &str, suggestions| pb::AskResponse {
            decision: pb::Decision::NoAnswer as i32,
            text: text.into(),
            suggestions,
            offer_leave_message: true,
            suggest_transfer: true,
            confidence,
            ..Default::default()
        };
        let reply = match &decision {
            Decision::Answer { best, .. } => {
                let key = &engine.items()[best.item].key;
                match self.answer_item(key, today, confidence).await? {
                    Some(reply) => reply,
                    None => no_answer(NO_ANSWER_TEXT, Vec::new()),
                }
            }
            Decision::Clarify { candidates } => pb::AskResponse {
                decision: pb::Decision::Clarify as i32,
                text: "您想咨询的是以下哪个问题？".into(),
                clarification: Some(pb::Clarification {
                    prompt: "您想咨询的是以下哪个问题？".into(),
                    node_id: CANDIDATES_NODE.into(),
                    options: candidates
                        .iter()
                        .map(|c| {
                            let item = &engine.items()[c.item];
                            pb::ClarificationOption { id: item.key.clone(), label: item.question.clone() }
                        })
                        .collect(),
                    round: 1,
                }),
                confidence,
                ..Default::default()
            },
            Decision::Suggest { candidates } => pb::AskResponse {
                decision: pb::Decision::Suggest as i32,
                text: "没有找到完全对应的答案，您是不是想问：".into(),
                suggestions: Self::suggestions(&engine, candidates),
                offer_leave_message: true,
                confidence,
                ..Default::default()
            },
            Decision::NoAnswer { .. } => no_answer(NO_ANSWER_TEXT, Vec::new()),
            Decision::OtherJurisdiction => no_answer(OTHER_JURISDICTION_TEXT, Vec::new()),
        };
        let mut reply = reply;
        if agitated {
            reply.text = format!("{}{}", moderation::SOOTHING, reply.text);
            reply.suggest_transfer = true;
        }
        Ok((reply, decision_name(&decision)))
    }

    /// A question as it may be logged: with what moderation masks, masked.
    fn masked(&self, question: &str) -> String {
        self.checkpoint.moderator().check(question, Direction::TaxpayerInput).masked
    }

    /// Counts the round for the conversation and, after too many unresolved ones in a row,
    /// proposes a human (提示转人工).
    async fn count_round(&self, conversation_id: &str, reply: &mut pb::AskResponse) -> Result<(), ApiError> {
        let conversation_id = conversation_id.trim();
        if conversation_id.is_empty() || conversation_id.chars().count() > 64 {
            return Ok(());
        }
        let resolved = reply.decision == pb::Decision::Answer as i32;
        let unresolved = self.kb.record_round(conversation_id, resolved).await?;
        if unresolved >= self.unresolved_rounds && !reply.suggest_transfer {
            reply.suggest_transfer = true;
            reply.text = format!("{}\n{MANY_ROUNDS_TEXT}", reply.text);
        }
        Ok(())
    }

    /// The current index (a re-index swaps it whole; calls in flight keep theirs).
    fn catalog(&self) -> Arc<crate::catalog::Catalog> {
        match self.catalog.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn engine(&self) -> Arc<Engine> {
        match self.shared.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The full answer for an item the engine (or the taxpayer's click) chose.
    async fn answer_item(
        &self,
        id: &str,
        today: chrono::NaiveDate,
        confidence: f32,
    ) -> Result<Option<pb::AskResponse>, ApiError> {
        let Ok(id) = uuid::Uuid::parse_str(id) else { return Ok(None) };
        let Some(item) = self.kb.by_id(id, today).await? else { return Ok(None) };
        let related = self.kb.questions(&item.related).await?;
        let mut reply = answer_from(item, related);
        reply.confidence = confidence;
        Ok(Some(reply))
    }

    fn suggestions(engine: &Engine, candidates: &[Candidate]) -> Vec<pb::SuggestedQuestion> {
        candidates
            .iter()
            .map(|c| {
                let item = &engine.items()[c.item];
                pb::SuggestedQuestion {
                    item_id: item.key.clone(),
                    question: item.question.clone(),
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// Node id of a clarification built from close candidates (options are item ids).
const CANDIDATES_NODE: &str = "candidates";

const MANY_ROUNDS_TEXT: &str = "您已连续几次没有找到满意的答案，可以点击“转人工”，由税务人员为您解答。";

const TRANSFER_TEXT: &str = "好的，请点击“转人工”，税务人员将尽快为您服务。";

const OTHER_JURISDICTION_TEXT: &str = "您好，这里解答山东省税务局管辖的涉税问题。其他省市税务机关的业务，请咨询当地税务机关或拨打当地12366纳税缴费服务热线。";

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
                "guide" => Block::GuideCard(pb::GuideCardBlock {
                    title,
                    materials: items(),
                    url: b["url"].as_str().unwrap_or_default().to_owned(),
                    ..Default::default()
                }),
                "link" => Block::Link(pb::LinkBlock { title, url: b["url"].as_str().unwrap_or_default().to_owned() }),
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
        let caller = identity::caller(&request)?;
        let r = request.into_inner();
        let question = r.question.trim();
        let today = zhengna_platform::time::shanghai_today();
        // A click on a listed question or on a clarification option answers that item.
        let chosen = if !r.item_id.trim().is_empty() {
            Some(("item_id", r.item_id.trim()))
        } else if r.clarification_node_id == CANDIDATES_NODE && !r.selected_option_id.trim().is_empty() {
            Some(("selected_option_id", r.selected_option_id.trim()))
        } else {
            None
        };
        if let Some((field, id)) = chosen {
            return match self.answer_item(id, today, 1.0).await? {
                Some(reply) => self.finish(&caller, &r, self.masked(question), "answer", reply).await,
                None => Err(ApiError::invalid(field, "no such published item", "该问题已更新，请重新提问。").into()),
            };
        }
        // 多轮互动: an option of a clarification tree leads further down or to an answer.
        if crate::clarify::Trees::is_tree_node(&r.clarification_node_id) {
            let catalog = self.catalog();
            let next =
                catalog.trees.choose(&r.clarification_node_id, r.selected_option_id.trim()).ok_or_else(|| {
                    ApiError::invalid("selected_option_id", "no such option at this node", "该选项已失效，请重新提问。")
                })?;
            let reply = match next {
                crate::clarify::Next::Ask { node_id, node, depth } => tree_reply(node_id, node, depth),
                crate::clarify::Next::Answer { catalog_id } => {
                    let key = self.engine().by_catalog(catalog_id).map(|i| i.key.clone()).unwrap_or_default();
                    match self.answer_item(&key, today, 1.0).await? {
                        Some(reply) => reply,
                        None => pb::AskResponse {
                            decision: pb::Decision::NoAnswer as i32,
                            text: NO_ANSWER_TEXT.into(),
                            offer_leave_message: true,
                            suggest_transfer: true,
                            ..Default::default()
                        },
                    }
                }
            };
            let name = if reply.decision == pb::Decision::Answer as i32 { "answer" } else { "clarify" };
            return self.finish(&caller, &r, self.masked(question), name, reply).await;
        }
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
        // Moderation first: a blocked question is not matched, a muted sender is not
        // answered; an agitated taxpayer is met with a soothing word and a human offer
        // whatever the answer; a warned one reads the warning first.
        let checked = self.checkpoint.moderator().check(question, Direction::TaxpayerInput);
        self.checkpoint.checks.add();
        let screened = match &caller {
            Caller::Taxpayer(_) => {
                self.checkpoint
                    .guard
                    .screen(&self.kb, &caller.subject(), &r.conversation_id, question, &checked)
                    .await?
                    .0
            }
            Caller::Agent(_) => {
                if checked.verdict != Verdict::Allow {
                    self.kb
                        .record_interception(words_interception(
                            &checked,
                            "taxpayer_input",
                            &r.conversation_id,
                            &caller.subject(),
                            question,
                        ))
                        .await?;
                }
                Screened::Pass
            }
        };
        let (mut reply, name) = match &screened {
            Screened::Muted { until, .. } => (
                pb::AskResponse {
                    decision: pb::Decision::NoAnswer as i32,
                    text: crate::harassment::muted_notice(*until),
                    muted_until: Some(prost_types::Timestamp { seconds: until.timestamp(), nanos: 0 }),
                    ..Default::default()
                },
                "throttled",
            ),
            _ => self.respond(&caller, question, today, &checked).await?,
        };
        reply.emotion = checked.emotion as i32;
        if matches!(screened, Screened::Warned { .. }) {
            reply.text = format!("{}\n{}", crate::harassment::WARNING, reply.text);
        }
        self.finish(&caller, &r, checked.masked.clone(), name, reply).await
    }

    async fn list_packages(
        &self,
        request: Request<pb::ListPackagesRequest>,
    ) -> Result<Response<pb::ListPackagesResponse>, Status> {
        identity::caller(&request)?;
        let page = zhengna_platform::paging::Page::from_request(request.get_ref().page.as_ref())?;
        let asks = self.popular.topic_asks().await?;
        let catalog = self.catalog();
        let mut packages: Vec<pb::QuestionPackage> = catalog
            .topics
            .iter()
            .filter(|t| t.package)
            .map(|t| {
                let (ask_count, questions) = asks.get(&t.topic).copied().unwrap_or((0, 0));
                pb::QuestionPackage {
                    topic_id: t.prefix.clone(),
                    name: t.topic.clone(),
                    description: t.description.clone(),
                    rank: 0,
                    ask_count,
                    question_count: i32::try_from(questions).unwrap_or(i32::MAX),
                }
            })
            .collect();
        packages.sort_by(|a, b| b.ask_count.cmp(&a.ask_count).then(a.topic_id.cmp(&b.topic_id)));
        for (i, p) in packages.iter_mut().enumerate() {
            p.rank = i as i32 + 1;
        }
        let total = packages.len() as i64;
        let shown: Vec<_> = packages.into_iter().skip(page.offset as usize).take(page.size as usize).collect();
        Ok(Response::new(pb::ListPackagesResponse { page: Some(page.response(shown.len(), total)), packages: shown }))
    }

    async fn list_package_questions(
        &self,
        request: Request<pb::ListPackageQuestionsRequest>,
    ) -> Result<Response<pb::ListPackageQuestionsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.get_ref();
        let catalog = self.catalog();
        let topic = catalog
            .topics
            .iter()
            .find(|t| t.prefix == r.topic_id.trim() && t.package)
            .ok_or_else(|| ApiError::invalid("topic_id", "not a package", "该问答套餐不存在，请刷新后重试。"))?;
        let page = zhengna_platform::paging::Page::from_request(r.page.as_ref())?;
        let tags = profile_tags(&caller);
        let (rows, total) = self.popular.questions(Some(&topic.topic), &tags, page.offset, page.size).await?;
        Ok(Response::new(pb::ListPackageQuestionsResponse {
            page: Some(page.response(rows.len(), total)),
            questions: ranked(rows, page.offset),
        }))
    }

    async fn get_hot_recommendations(
        &self,
        request: Request<pb::GetHotRecommendationsRequest>,
    ) -> Result<Response<pb::GetHotRecommendationsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.get_ref();
        if !(0..=20).contains(&r.question_limit) || !(0..=20).contains(&r.file_limit) {
            return Err(ApiError::invalid("question_limit", "0 to 20", "参数有误。").into());
        }
        let limit = if r.question_limit == 0 { 10 } else { i64::from(r.question_limit) };
        let tags = profile_tags(&caller);
        let (rows, _) = self.popular.questions(None, &tags, 0, limit).await?;
        let file_limit = if r.file_limit == 0 { 5 } else { r.file_limit as usize };
        let files = self.popular.related_files(&rows, file_limit).await?;
        Ok(Response::new(pb::GetHotRecommendationsResponse { questions: ranked(rows, 0), files }))
    }

    async fn get_answer(
        &self,
        request: Request<pb::GetAnswerRequest>,
    ) -> Result<Response<pb::GetAnswerResponse>, Status> {
        identity::caller(&request)?;
        let id = parse_item("item_id", &request.get_ref().item_id)?;
        let today = zhengna_platform::time::shanghai_today();
        // A retired item answers with its successor, marked as superseded.
        let (target, superseded) = match self.kb.successor(id).await? {
            Some(next) => (next, true),
            None => (id, false),
        };
        let reply = self.answer_item(&target.to_string(), today, 1.0).await?;
        match reply.and_then(|r| r.answer) {
            Some(answer) => Ok(Response::new(pb::GetAnswerResponse { answer: Some(answer), superseded })),
            None => Err(ApiError::NotFound("answer".into()).into()),
        }
    }

    async fn list_hot_words(
        &self,
        request: Request<pb::ListHotWordsRequest>,
    ) -> Result<Response<pb::ListHotWordsResponse>, Status> {
        identity::caller(&request)?;
        let page = zhengna_platform::paging::Page::from_request(request.get_ref().page.as_ref())?;
        let (words, total, at) = self.popular.hot_words(page.offset, page.size).await?;
        Ok(Response::new(pb::ListHotWordsResponse {
            page: Some(page.response(words.len(), total)),
            words: words.into_iter().map(|(word, rank, heat)| pb::HotWord { word, rank, heat }).collect(),
            generated_at: at.map(|t| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }),
        }))
    }

    async fn submit_feedback(
        &self,
        request: Request<pb::SubmitFeedbackRequest>,
    ) -> Result<Response<pb::SubmitFeedbackResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let out = self.feedback.submit(&tp.tax_id, request.get_ref()).await?;
        Ok(Response::new(pb::SubmitFeedbackResponse {
            feedback: Some(out.feedback),
            prompt: out.prompt,
            show_reason_form: out.show_reason_form,
            suggest_transfer: out.suggest_transfer,
        }))
    }

    async fn suggest_questions(
        &self,
        request: Request<pb::SuggestQuestionsRequest>,
    ) -> Result<Response<pb::SuggestQuestionsResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.get_ref();
        if r.text.chars().count() > MAX_QUESTION_CHARS {
            return Err(ApiError::invalid("text", "at most 300 characters", "输入内容过长。").into());
        }
        if !(0..=10).contains(&r.limit) {
            return Err(ApiError::invalid("limit", "0 to 10", "参数有误。").into());
        }
        let limit = if r.limit == 0 { 10 } else { r.limit as usize };
        let tags = profile_tags(&caller);
        let ctx = Context { today: zhengna_platform::time::shanghai_today(), tags: &tags };
        let engine = self.engine();
        let suggestions = engine
            .autocomplete(&r.text, &ctx, limit)
            .into_iter()
            .map(|c| {
                let item = &engine.items()[c.item];
                pb::SuggestedQuestion {
                    item_id: item.key.clone(),
                    question: item.question.clone(),
                    highlights: c
                        .highlight
                        .map(|(s, e)| pb::TextSpan { start: s as i32, end: e as i32 })
                        .into_iter()
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::SuggestQuestionsResponse { suggestions }))
    }

    async fn add_favourite(
        &self,
        request: Request<pb::AddFavouriteRequest>,
    ) -> Result<Response<pb::AddFavouriteResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let item = parse_item("item_id", &request.get_ref().item_id)?;
        let today = zhengna_platform::time::shanghai_today();
        let favourite = self.favourites.add(&tp.tax_id, item, today).await?;
        Ok(Response::new(pb::AddFavouriteResponse { favourite: Some(favourite) }))
    }

    async fn remove_favourite(
        &self,
        request: Request<pb::RemoveFavouriteRequest>,
    ) -> Result<Response<pb::RemoveFavouriteResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let item = parse_item("item_id", &request.get_ref().item_id)?;
        Ok(Response::new(pb::RemoveFavouriteResponse { removed: self.favourites.remove(&tp.tax_id, item).await? }))
    }

    async fn list_favourites(
        &self,
        request: Request<pb::ListFavouritesRequest>,
    ) -> Result<Response<pb::ListFavouritesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let page = zhengna_platform::paging::Page::from_request(request.get_ref().page.as_ref())?;
        let today = zhengna_platform::time::shanghai_today();
        let (favourites, total) = self.favourites.list(&tp.tax_id, today, page.offset, page.size).await?;
        Ok(Response::new(pb::ListFavouritesResponse { page: Some(page.response(favourites.len(), total)), favourites }))
    }

    async fn check_favourites(
        &self,
        request: Request<pb::CheckFavouritesRequest>,
    ) -> Result<Response<pb::CheckFavouritesResponse>, Status> {
        let caller = identity::caller(&request)?;
        let tp = caller.taxpayer()?;
        let r = request.get_ref();
        if r.item_ids.len() > 100 {
            return Err(ApiError::invalid("item_ids", "at most 100", "参数有误。").into());
        }
        let ids = r
            .item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| parse_item(&format!("item_ids[{i}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::CheckFavouritesResponse {
            favourite_item_ids: self.favourites.check(&tp.tax_id, &ids).await?,
        }))
    }
}

fn ranked(rows: Vec<Ranked>, offset: i64) -> Vec<pb::RankedQuestion> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (id, question, asks))| pb::RankedQuestion {
            item_id: id.to_string(),
            question,
            rank: i32::try_from(offset).unwrap_or(0) + i as i32 + 1,
            ask_count: asks,
        })
        .collect()
}

/// The caller's profile tags for audience filtering (staff see every audience).
fn profile_tags(caller: &zhengna_platform::Caller) -> Vec<String> {
    match caller {
        zhengna_platform::Caller::Taxpayer(t) => t.tags.clone(),
        zhengna_platform::Caller::Agent(_) => Vec::new(),
    }
}

/// A clarification question from a tree node.
fn tree_reply(node_id: String, node: &crate::clarify::Node, depth: usize) -> pb::AskResponse {
    pb::AskResponse {
        decision: pb::Decision::Clarify as i32,
        text: node.prompt.clone(),
        clarification: Some(pb::Clarification {
            prompt: node.prompt.clone(),
            node_id,
            options: node
                .options
                .iter()
                .enumerate()
                .map(|(i, o)| pb::ClarificationOption { id: i.to_string(), label: o.label.clone() })
                .collect(),
            round: i32::try_from(depth + 1).unwrap_or(i32::MAX),
        }),
        confidence: 1.0,
        ..Default::default()
    }
}

fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Answer { .. } => "answer",
        Decision::Clarify { .. } => "clarify",
        Decision::Suggest { .. } => "suggest",
        Decision::NoAnswer { .. } => "no_answer",
        Decision::OtherJurisdiction => "other_jurisdiction",
    }
}

/// `CheckContent` for the session service (human chat) and the bot's own output.
pub struct ModerationApi {
    checkpoint: Checkpoint,
    kb: Kb,
}

impl ModerationApi {
    pub fn new(checkpoint: Checkpoint, kb: Kb) -> Self {
        Self { checkpoint, kb }
    }
}

#[tonic::async_trait]
impl pb::moderation_service_server::ModerationService for ModerationApi {
    async fn check_content(
        &self,
        request: Request<pb::CheckContentRequest>,
    ) -> Result<Response<pb::CheckContentResponse>, Status> {
        let caller = identity::caller(&request)?;
        let r = request.into_inner();
        let (direction, name) = match pb::ContentDirection::try_from(r.direction) {
            Ok(pb::ContentDirection::TaxpayerInput) => (Direction::TaxpayerInput, "taxpayer_input"),
            Ok(pb::ContentDirection::BotOutput) => (Direction::BotOutput, "bot_output"),
            Ok(pb::ContentDirection::AgentOutput) => (Direction::AgentOutput, "agent_output"),
            _ => return Err(ApiError::invalid("direction", "choose a direction", "参数有误。").into()),
        };
        if r.text.chars().count() > 5000 {
            return Err(ApiError::invalid("text", "at most 5000 characters", "内容过长。").into());
        }
        let c = self.checkpoint.moderator().check(&r.text, direction);
        self.checkpoint.checks.add();
        let sender = if r.sender_id.is_empty() { caller.subject() } else { r.sender_id.clone() };
        let mut verdict = match c.verdict {
            Verdict::Allow => pb::ModerationVerdict::Allow,
            Verdict::Mask => pb::ModerationVerdict::Mask,
            Verdict::Block => pb::ModerationVerdict::Block,
        };
        let mut notice =
            if c.verdict == Verdict::Block { moderation::BLOCKED_NOTICE.to_owned() } else { String::new() };
        let mut muted_until = None;
        let mut signals = Vec::new();
        // A taxpayer's message climbs the harassment ladder; everything else is only
        // checked for words.
        let interception = if direction == Direction::TaxpayerInput && !sender.is_empty() {
            let (screened, id) =
                self.checkpoint.guard.screen(&self.kb, &sender, &r.conversation_id, &r.text, &c).await?;
            match screened {
                Screened::Pass => {}
                Screened::Warned { signals: s } => {
                    signals = s;
                    if notice.is_empty() {
                        notice = crate::harassment::WARNING.to_owned();
                    }
                }
                Screened::Muted { until, signals: s } => {
                    signals = s;
                    verdict = pb::ModerationVerdict::Throttle;
                    notice = crate::harassment::muted_notice(until);
                    muted_until = Some(prost_types::Timestamp { seconds: until.timestamp(), nanos: 0 });
                }
            }
            id
        } else if c.verdict != Verdict::Allow {
            Some(self.kb.record_interception(words_interception(&c, name, &r.conversation_id, &sender, &r.text)).await?)
        } else {
            None
        };
        let agitated = c.emotion == pb::Emotion::Angry;
        let action = if c.verdict == Verdict::Block { pb::SensitiveAction::Block } else { pb::SensitiveAction::Mask };
        Ok(Response::new(pb::CheckContentResponse {
            verdict: verdict as i32,
            hits: c
                .hits
                .iter()
                .map(|h| pb::SensitiveHit {
                    word: h.word.clone(),
                    category: h.category as i32,
                    span: Some(pb::TextSpan { start: h.start as i32, end: h.end as i32 }),
                    action: action as i32,
                })
                .collect(),
            masked_text: c.masked,
            emotion: c.emotion as i32,
            emotion_score: c.emotion_score,
            harassment_signals: signals.into_iter().map(|s| s as i32).collect(),
            muted_until,
            notice,
            calming_reply: if agitated { moderation::SOOTHING.into() } else { String::new() },
            suggest_transfer: agitated,
            interception_id: interception.map(|u| u.to_string()).unwrap_or_default(),
        }))
    }
}

/// Speech arrives later in the answering issue; until then every method answers
/// UNIMPLEMENTED naming it.
pub struct Later;

#[tonic::async_trait]
impl pb::speech_service_server::SpeechService for Later {}
