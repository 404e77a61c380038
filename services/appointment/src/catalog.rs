//! Choices offered by the booking form: service types (预约服务类型) and business categories
//! (预约业务类别), by stable code with their display names.

pub const DEFAULT_SERVICE_TYPE: &str = "general";

pub const SERVICE_TYPES: &[(&str, &str)] =
    &[("general", "综合服务"), ("policy", "政策咨询"), ("operation", "办税操作辅导"), ("special", "特殊事项办理")];

pub const BUSINESS_CATEGORIES: &[(&str, &str)] = &[
    ("invoice", "发票业务"),
    ("declaration", "申报纳税"),
    ("registration", "涉税登记"),
    ("preferential", "税收优惠"),
    ("refund", "退税业务"),
    ("iit", "个人所得税"),
    ("social_insurance", "社保费业务"),
    ("other", "其他"),
];

pub fn service_type_name(code: &str) -> Option<&'static str> {
    SERVICE_TYPES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

pub fn business_category_name(code: &str) -> Option<&'static str> {
    BUSINESS_CATEGORIES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}
