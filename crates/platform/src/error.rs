//! API errors and their mapping to `tonic::Status`.
//!
//! Validation failures carry one violation per field (`google.rpc.BadRequest`) plus a kind
//! Chinese `LocalizedMessage` the widget can show as it is. Internal errors are logged once
//! here and reach clients only as a generic message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field: `field` is the request field path, `description` is for developers
/// (English), `user_message` is what a taxpayer or agent reads (Chinese).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
    pub user_message: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>, user_message: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into(), user_message: user_message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid argument: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A request refused by a business rule (slot full, illegal state change…), with the
    /// Chinese text to show; maps to FAILED_PRECONDITION.
    #[error("refused: {reason}")]
    Refused { reason: String, user_message: String },
    /// The operation exists in the API but belongs to a later piece of work; `topic` names it.
    #[error("not implemented yet: {0}")]
    Unimplemented(&'static str),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

fn summary(v: &[FieldViolation]) -> String {
    v.iter().map(|f| format!("{}: {}", f.field, f.description)).collect::<Vec<_>>().join("; ")
}

impl ApiError {
    pub fn invalid(field: &str, description: &str, user_message: &str) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description, user_message)])
    }

    pub fn refused(reason: impl Into<String>, user_message: impl Into<String>) -> Self {
        Self::Refused { reason: reason.into(), user_message: user_message.into() }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }

    /// Maps the status of a call to another zhengna service back to an error of this one,
    /// keeping field violations and the Chinese text the user should read.
    pub fn from_upstream(status: Status) -> Self {
        let details = status.get_error_details();
        let text = details.localized_message().map(|m| m.message.clone()).unwrap_or_default();
        match status.code() {
            Code::InvalidArgument => {
                let texts: Vec<&str> = text.split('；').collect();
                let violations: Vec<FieldViolation> = details
                    .bad_request()
                    .map(|b| b.field_violations.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let user = match &v.localized_message {
                            Some(m) if !m.message.is_empty() => m.message.clone(),
                            _ => texts.get(i).copied().unwrap_or(text.as_str()).to_owned(),
                        };
                        FieldViolation::new(v.field, v.description, user)
                    })
                    .collect();
                if violations.is_empty() {
                    Self::invalid("request", status.message(), &text)
                } else {
                    Self::InvalidArgument(violations)
                }
            }
            Code::FailedPrecondition if !text.is_empty() => Self::refused(status.message(), text),
            Code::FailedPrecondition => Self::FailedPrecondition(status.message().to_owned()),
            Code::NotFound => Self::NotFound(status.message().to_owned()),
            Code::PermissionDenied => Self::PermissionDenied(status.message().to_owned()),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
                Self::Unavailable(format!("upstream: {}", status.message()))
            }
            _ => Self::Internal(format!("upstream {:?}: {}", status.code(), status.message())),
        }
    }
}

/// Kind Chinese texts for the non-validation cases, shown to the person using the widget.
fn user_text(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "登录状态已失效，请重新登录后再试。",
        Code::PermissionDenied => "抱歉，您没有权限进行此操作。",
        Code::NotFound => "未找到相关记录，请刷新后再试。",
        Code::AlreadyExists => "该记录已存在，请勿重复提交。",
        Code::FailedPrecondition => "当前状态下无法进行此操作，请刷新后再试。",
        Code::Unimplemented => "该功能正在建设中，敬请期待。",
        Code::Unavailable => "服务暂时繁忙，请稍后再试。",
        _ => "系统开小差了，请稍后再试。",
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let (code, message) = match &err {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                // Each violation carries its own Chinese text too, so a form can show it
                // under the field it belongs to.
                details.set_bad_request(
                    violations
                        .iter()
                        .map(|v| tonic_types::FieldViolation {
                            field: v.field.clone(),
                            description: v.description.clone(),
                            reason: String::new(),
                            localized_message: Some(tonic_types::LocalizedMessage {
                                locale: "zh-CN".into(),
                                message: v.user_message.clone(),
                            }),
                        })
                        .collect::<Vec<_>>(),
                );
                let text = violations.iter().map(|v| v.user_message.as_str()).collect::<Vec<_>>().join("；");
                details.set_localized_message("zh-CN", text);
                return Status::with_error_details(Code::InvalidArgument, err.to_string(), details);
            }
            ApiError::Unauthenticated(m) => (Code::Unauthenticated, m.clone()),
            ApiError::PermissionDenied(m) => (Code::PermissionDenied, m.clone()),
            ApiError::NotFound(m) => (Code::NotFound, m.clone()),
            ApiError::AlreadyExists(m) => (Code::AlreadyExists, m.clone()),
            ApiError::FailedPrecondition(m) => (Code::FailedPrecondition, m.clone()),
            ApiError::Refused { reason, user_message } => {
                let mut details = ErrorDetails::new();
                details.set_localized_message("zh-CN", user_message.clone());
                return Status::with_error_details(Code::FailedPrecondition, reason.clone(), details);
            }
            ApiError::Unimplemented(topic) => (Code::Unimplemented, format!("not implemented yet: {topic}")),
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (Code::Unavailable, "service temporarily unavailable".to_owned())
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (Code::Internal, "internal error".to_owned())
            }
        };
        let mut details = ErrorDetails::new();
        details.set_localized_message("zh-CN", user_text(code));
        Status::with_error_details(code, message, details)
    }
}

#[cfg(feature = "db")]
impl From<sqlx::Error> for ApiError {
    /// Maps by SQLSTATE: unique violation → AlreadyExists, everything else is internal.
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => ApiError::NotFound("record".into()),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                ApiError::AlreadyExists(db.constraint().unwrap_or("unique").to_owned())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable(err.to_string()),
            _ => ApiError::Internal(err.to_string()),
        }
    }
}

/// Unimplemented methods name the issue topic that will deliver them.
pub fn unimplemented<T>(topic: &'static str) -> Result<T, Status> {
    Err(ApiError::Unimplemented(topic).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_and_chinese_text() {
        let status: Status = ApiError::invalid("content.text", "must not be empty", "请输入您要咨询的问题").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("content.text"));
        let details = status.get_error_details();
        let br = details.bad_request().expect("bad request");
        assert_eq!(br.field_violations[0].field, "content.text");
        assert_eq!(details.localized_message().expect("lm").message, "请输入您要咨询的问题");
        let per_field = br.field_violations[0].localized_message.as_ref().expect("per-field text");
        assert_eq!(per_field.message, "请输入您要咨询的问题");
    }

    #[test]
    fn upstream_errors_keep_fields_and_texts() {
        let up: Status = ApiError::InvalidArgument(vec![
            FieldViolation::new("attachment_ids[0]", "missing", "附件未上传成功"),
            FieldViolation::new("attachment_ids[2]", "twice", "同一附件不能重复添加"),
        ])
        .into();
        let ApiError::InvalidArgument(v) = ApiError::from_upstream(up) else { panic!("expected invalid") };
        assert_eq!(v.len(), 2);
        assert_eq!((v[1].field.as_str(), v[1].user_message.as_str()), ("attachment_ids[2]", "同一附件不能重复添加"));
        let refused: Status = ApiError::refused("full", "已约满").into();
        assert!(
            matches!(ApiError::from_upstream(refused), ApiError::Refused { user_message, .. } if user_message == "已约满")
        );
        assert!(matches!(ApiError::from_upstream(Status::unavailable("x")), ApiError::Unavailable(_)));
    }

    #[test]
    fn internal_errors_are_not_leaked() {
        let status: Status = ApiError::internal("password=hunter2 connection refused").into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
