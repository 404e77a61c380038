//! What may be uploaded: per purpose, the extensions and the size limit (ARCHITECTURE.md,
//! spec §3.4–3.5, §1.19–1.20), and the content check that the bytes are what the extension
//! says. Sniffing reads only the first bytes, so a file is refused before its body is stored.

use zhengna_proto::common::v1::AttachmentKind;
use zhengna_proto::session::v1::UploadPurpose;

pub const MB: i64 = 1024 * 1024;

pub use zhengna_platform::attachments::{FILE_EXTENSIONS, IMAGE_EXTENSIONS};

/// How many leading bytes the sniffer needs at most.
pub const SNIFF_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ChatImage,
    ChatFile,
    Appointment,
    LeaveMessage,
}

impl Purpose {
    pub fn from_proto(p: i32) -> Option<Self> {
        match UploadPurpose::try_from(p).ok()? {
            UploadPurpose::ChatImage => Some(Self::ChatImage),
            UploadPurpose::ChatFile => Some(Self::ChatFile),
            UploadPurpose::Appointment => Some(Self::Appointment),
            UploadPurpose::LeaveMessage => Some(Self::LeaveMessage),
            UploadPurpose::Unspecified => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatImage => "chat_image",
            Self::ChatFile => "chat_file",
            Self::Appointment => "appointment",
            Self::LeaveMessage => "leave_message",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::ChatImage, Self::ChatFile, Self::Appointment, Self::LeaveMessage].into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_chat(self) -> bool {
        matches!(self, Self::ChatImage | Self::ChatFile)
    }

    /// Largest accepted size in bytes: chat "小于10MB", attachments "不超过 20M".
    pub fn max_bytes(self) -> i64 {
        if self.is_chat() { 10 * MB - 1 } else { zhengna_platform::attachments::MAX_ATTACHMENT_BYTES }
    }

    pub fn allows(self, ext: &str) -> bool {
        match self {
            Self::ChatImage => IMAGE_EXTENSIONS.contains(&ext),
            Self::ChatFile => FILE_EXTENSIONS.contains(&ext),
            Self::Appointment | Self::LeaveMessage => IMAGE_EXTENSIONS.contains(&ext) || FILE_EXTENSIONS.contains(&ext),
        }
    }

    /// What the taxpayer reads when the type is refused.
    pub fn type_message(self) -> &'static str {
        match self {
            Self::ChatImage => {
                "图片格式不支持，请发送 jpg、jpeg、png、gif、bmp、webp、tif、tiff、ico、svg、avif 等格式的图片。"
            }
            Self::ChatFile => "文件格式不支持，请发送 txt、xls、xlsx、doc、docx、pdf、zip、rar、dbf 格式的文件。",
            Self::Appointment | Self::LeaveMessage => {
                "附件格式不支持，请上传常见的图片或 txt、xls、xlsx、doc、docx、pdf、zip、rar、dbf 格式的文件。"
            }
        }
    }

    pub fn size_message(self) -> &'static str {
        if self.is_chat() {
            "文件大小需小于10MB，请压缩后再发送。"
        } else {
            "每份附件不能超过20M，请压缩后再上传。"
        }
    }
}

/// The lower-cased extension of a file name, if it has one.
pub fn extension(file_name: &str) -> Option<String> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    if stem.trim().is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

pub fn kind_of(ext: &str) -> AttachmentKind {
    if IMAGE_EXTENSIONS.contains(&ext) { AttachmentKind::Image } else { AttachmentKind::File }
}

/// Checks that `head` (the first up to [`SNIFF_LEN`] bytes, or the whole file if shorter)
/// is a file of type `ext`, and returns the media type to record. `None` means the content
/// does not match the extension.
pub fn sniff(ext: &str, head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    match ext {
        "jpg" | "jpeg" | "jfif" | "pjpeg" | "pjp" => starts(&[0xFF, 0xD8, 0xFF]).then_some("image/jpeg"),
        "png" => starts(b"\x89PNG\r\n\x1a\n").then_some("image/png"),
        "gif" => (starts(b"GIF87a") || starts(b"GIF89a")).then_some("image/gif"),
        "webp" => (head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP").then_some("image/webp"),
        "bmp" => (head.len() >= 26 && starts(b"BM")).then_some("image/bmp"),
        "tif" | "tiff" => (starts(b"II*\0") || starts(b"MM\0*")).then_some("image/tiff"),
        "ico" => (starts(&[0, 0, 1, 0]) && head.len() >= 6 && (head[4] != 0 || head[5] != 0)).then_some("image/x-icon"),
        "avif" => is_avif(head).then_some("image/avif"),
        "jxl" => (starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n")).then_some("image/jxl"),
        "svg" => is_svg(head).then_some("image/svg+xml"),
        "svgz" => starts(&[0x1F, 0x8B, 0x08]).then_some("image/svg+xml"),
        "xbm" => (is_text(head) && String::from_utf8_lossy(head).trim_start().starts_with("#define"))
            .then_some("image/x-xbitmap"),
        "pdf" => starts(b"%PDF-").then_some("application/pdf"),
        "zip" => is_zip(head).then_some("application/zip"),
        "docx" => is_zip(head).then_some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "xlsx" => is_zip(head).then_some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "doc" => is_ole(head).then_some("application/msword"),
        "xls" => is_ole(head).then_some("application/vnd.ms-excel"),
        "rar" => (starts(b"Rar!\x1a\x07\x00") || starts(b"Rar!\x1a\x07\x01\x00")).then_some("application/vnd.rar"),
        "dbf" => is_dbf(head).then_some("application/x-dbf"),
        "txt" => is_text(head).then_some("text/plain"),
        _ => None,
    }
}

fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

fn is_ole(head: &[u8]) -> bool {
    head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
}

/// ISO-BMFF `ftyp` box with an AVIF brand among its brands.
fn is_avif(head: &[u8]) -> bool {
    if head.len() < 16 || &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let end = size.min(head.len());
    head.get(8..end).is_some_and(|brands| brands.chunks(4).any(|b| b == b"avif" || b == b"avis"))
}

/// dBASE header: a known version byte, a plausible last-update date and header length.
fn is_dbf(head: &[u8]) -> bool {
    if head.len() < 32 {
        return false;
    }
    let versions = [0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x83, 0x8B, 0x8E, 0xCB, 0xF5, 0xFB];
    let header_len = u16::from_le_bytes([head[8], head[9]]);
    versions.contains(&head[0]) && (1..=12).contains(&head[2]) && (1..=31).contains(&head[3]) && header_len >= 33
}

/// Text: no NUL bytes and almost no other control characters (UTF-8 or GB18030 both pass).
fn is_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return true;
    }
    let controls = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B)).count();
    !head.contains(&0) && controls * 100 <= head.len()
}

/// SVG: text whose first element (after an XML declaration, comments and a doctype) is `<svg`.
fn is_svg(head: &[u8]) -> bool {
    if !is_text(head) {
        return false;
    }
    let text = String::from_utf8_lossy(head);
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            match r.find("?>") {
                Some(i) => rest = r[i + 2..].trim_start(),
                None => return false,
            }
        } else if let Some(r) = rest.strip_prefix("<!--") {
            match r.find("-->") {
                Some(i) => rest = r[i + 3..].trim_start(),
                None => return false,
            }
        } else if let Some(r) = rest.strip_prefix("<!") {
            match r.find('>') {
                Some(i) => rest = r[i + 1..].trim_start(),
                None => return false,
            }
        } else {
            return rest.starts_with("<svg");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn limits_follow_the_spec() {
        assert_eq!(Purpose::ChatImage.max_bytes(), 10 * MB - 1);
        assert_eq!(Purpose::ChatFile.max_bytes(), 10 * MB - 1);
        assert_eq!(Purpose::Appointment.max_bytes(), 20 * MB);
        assert!(Purpose::ChatImage.allows("png") && !Purpose::ChatImage.allows("pdf"));
        assert!(Purpose::ChatFile.allows("dbf") && !Purpose::ChatFile.allows("exe"));
        assert!(Purpose::LeaveMessage.allows("png") && Purpose::LeaveMessage.allows("docx"));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("发票清单.XLSX").as_deref(), Some("xlsx"));
        assert_eq!(extension("a.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension(".png"), None);
        assert_eq!(extension("x."), None);
    }

    #[test]
    fn sniffing_accepts_real_headers() {
        assert_eq!(sniff("png", PNG), Some("image/png"));
        assert_eq!(sniff("jpg", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some("image/jpeg"));
        assert_eq!(sniff("gif", b"GIF89a\x01\0\x01\0"), Some("image/gif"));
        assert_eq!(sniff("webp", b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff("avif", b"\0\0\0\x1cftypavif\0\0\0\0avifmif1"), Some("image/avif"));
        assert_eq!(sniff("pdf", b"%PDF-1.7\n"), Some("application/pdf"));
        assert!(sniff("docx", b"PK\x03\x04\x14\0\x06\0").is_some());
        assert!(sniff("xls", &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]).is_some());
        assert_eq!(sniff("txt", "纳税申报说明\n第二行".as_bytes()), Some("text/plain"));
        assert_eq!(
            sniff(
                "svg",
                b"<?xml version=\"1.0\"?>\n<!-- x -->\n<!DOCTYPE svg>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"
            ),
            Some("image/svg+xml")
        );
        let mut dbf = vec![0x03, 124, 11, 24];
        dbf.extend_from_slice(&[0; 4]);
        dbf.extend_from_slice(&97u16.to_le_bytes());
        dbf.resize(64, 0);
        assert_eq!(sniff("dbf", &dbf), Some("application/x-dbf"));
    }

    #[test]
    fn sniffing_refuses_spoofed_content() {
        // An executable renamed to an image or a document.
        let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff";
        for ext in ["png", "jpg", "pdf", "docx", "txt", "svg", "dbf", "gif"] {
            assert_eq!(sniff(ext, exe), None, "{ext}");
        }
        // A PNG named .pdf, a PDF named .png, HTML named .svg.
        assert_eq!(sniff("pdf", PNG), None);
        assert_eq!(sniff("png", b"%PDF-1.7"), None);
        assert_eq!(sniff("svg", b"<html><script>alert(1)</script></html>"), None);
        assert_eq!(sniff("exe", exe), None);
    }
}
