// Uploads a file the way every zhengna form and the chat do it:
//   1. ConversationService.CreateUpload validates name/extension/size before any byte is sent
//      and returns a short-lived URL on the gateway (PUT /uploads/{id}?token=…);
//   2. the bytes are PUT there with XMLHttpRequest, so the caller gets progress events;
//   3. ConversationService.CompleteUpload checks the content and returns the stored
//      attachment, whose id is then passed to SendMessage / BookAppointment /
//      SubmitLeaveMessage.
// Every failure is turned into an ApiFailure-shaped error with a Chinese text.
import { Code, ConnectError } from "@connectrpc/connect";
import { conversation, clientId } from "./client";
import { failure, type ApiFailure } from "./errors";
import { UploadPurpose } from "../gen/zhengna/session/v1/conversation_pb.js";
import type { AttachmentRef } from "../gen/zhengna/common/v1/common_pb.js";

export { UploadPurpose };

/** Thrown by uploadFile: `failure` is what to show (message in Chinese). */
export class UploadError extends Error {
  constructor(public readonly failure: ApiFailure) {
    super(failure.message);
    this.name = "UploadError";
  }
}

export interface UploadOptions {
  /** Conversation the file will be sent in (chat purposes only). */
  conversationId?: string;
  /** Cancels the upload (the promise rejects with an UploadError, code Canceled). */
  signal?: AbortSignal;
}

/** Allowed extensions (lower case, no dot), as documented on UploadPurpose. */
export const IMAGE_EXTENSIONS = [
  "tif", "pjp", "xbm", "jxl", "svgz", "jpg", "jpeg", "ico", "tiff", "gif", "svg", "jfif", "webp", "png", "bmp",
  "pjpeg", "avif",
];
export const FILE_EXTENSIONS = ["txt", "xls", "xlsx", "doc", "docx", "pdf", "zip", "rar", "dbf"];

const MB = 1024 * 1024;

/** The limits of a purpose as the proto documents them (the server has the last word). */
export function purposeRules(purpose: UploadPurpose): { extensions: string[]; maxSizeBytes: number; strictlyLess: boolean } {
  switch (purpose) {
    case UploadPurpose.CHAT_IMAGE:
      return { extensions: IMAGE_EXTENSIONS, maxSizeBytes: 10 * MB, strictlyLess: true };
    case UploadPurpose.CHAT_FILE:
      return { extensions: FILE_EXTENSIONS, maxSizeBytes: 10 * MB, strictlyLess: true };
    default:
      return { extensions: [...IMAGE_EXTENSIONS, ...FILE_EXTENSIONS], maxSizeBytes: 20 * MB, strictlyLess: false };
  }
}

/** Lower-case extension of a file name without the dot ("" when none). */
export function extensionOf(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? "" : name.slice(i + 1).toLowerCase();
}

/** "1.2 MB", "830 KB", "12 B". */
export function formatSize(bytes: number | bigint): string {
  const n = Number(bytes);
  if (n >= MB) return `${(n / MB).toFixed(n >= 10 * MB ? 0 : 1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

function fail(code: Code, message: string, violations: ApiFailure["violations"] = []): UploadError {
  return new UploadError({ code, message, violations });
}

/** PUTs the bytes with progress; resolves on 2xx, rejects with the gateway's Chinese text. */
function put(
  url: string,
  method: string,
  headers: Record<string, string>,
  file: File,
  onProgress: (percent: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method || "PUT", url);
    for (const [k, v] of Object.entries(headers)) {
      // The browser sets Content-Length itself and refuses to be told.
      if (k.toLowerCase() !== "content-length") xhr.setRequestHeader(k, v);
    }
    if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) {
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    }
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(Math.min(99, Math.floor((e.loaded / e.total) * 100)));
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      let message = "";
      try {
        message = (JSON.parse(xhr.responseText) as { message?: string }).message ?? "";
      } catch {
        // Not JSON: fall back below.
      }
      const text =
        message ||
        ({ 413: "文件大小超出限制，请压缩后重新上传", 415: "文件内容与类型不符，请检查后重新上传", 404: "上传链接已失效，请重新上传", 409: "该文件已上传，请勿重复上传" } as Record<number, string>)[xhr.status] ||
        "文件上传失败，请稍后重试";
      reject(fail(xhr.status === 413 || xhr.status === 415 ? Code.InvalidArgument : Code.Unknown, text));
    };
    xhr.onerror = () => reject(fail(Code.Unavailable, "网络连接不稳定，文件上传失败，请稍后重试"));
    xhr.onabort = () => reject(fail(Code.Canceled, "已取消上传"));
    if (signal) {
      if (signal.aborted) {
        reject(fail(Code.Canceled, "已取消上传"));
        return;
      }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(file);
  });
}

/**
 * Uploads `file` for `purpose`: CreateUpload → PUT with progress → CompleteUpload.
 * `onProgress` receives 0..100 (100 only once the server accepted the content).
 * Resolves with the stored attachment (use `.id`); rejects with an UploadError whose
 * `failure.message` is the Chinese text to show.
 */
export async function uploadFile(
  file: File,
  purpose: UploadPurpose,
  onProgress: (percent: number) => void = () => undefined,
  opts: UploadOptions = {},
): Promise<AttachmentRef> {
  onProgress(0);
  let created;
  try {
    created = await conversation.createUpload(
      {
        clientRequestId: clientId(),
        purpose,
        fileName: file.name,
        contentType: file.type,
        sizeBytes: BigInt(file.size),
        conversationId: opts.conversationId ?? "",
      },
      { signal: opts.signal },
    );
  } catch (e) {
    throw new UploadError(uploadFailure(e));
  }
  await put(created.uploadUrl, created.method, created.headers, file, onProgress, opts.signal);
  try {
    const done = await conversation.completeUpload({ uploadId: created.uploadId }, { signal: opts.signal });
    if (!done.attachment) throw fail(Code.Internal, "文件上传失败，请稍后重试");
    onProgress(100);
    return done.attachment;
  } catch (e) {
    if (e instanceof UploadError) throw e;
    throw new UploadError(uploadFailure(e));
  }
}

/** A failed CreateUpload/CompleteUpload as one Chinese text (violations kept for forms). */
function uploadFailure(e: unknown): ApiFailure {
  if (e instanceof UploadError) return e.failure;
  const f = failure(e);
  if (ConnectError.from(e).code === Code.Canceled) return { ...f, message: "已取消上传" };
  return f;
}
