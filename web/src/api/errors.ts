// Turns a failed call into what a taxpayer should read. The services attach a kind Chinese
// text (google.rpc.LocalizedMessage) and, for bad input, one violation per field
// (google.rpc.BadRequest); both are decoded here from the raw status details.
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export interface FieldViolation {
  field: string;
  description: string;
}

export interface ApiFailure {
  code: Code;
  /** Chinese text for the taxpayer. */
  message: string;
  /** Per-field problems, for forms (InvalidArgument only). */
  violations: FieldViolation[];
}

const FALLBACK: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "登录已过期，请重新登录后再试",
  [Code.PermissionDenied]: "您无权查看或操作该内容",
  [Code.NotFound]: "内容不存在或已被删除",
  [Code.ResourceExhausted]: "操作过于频繁，请稍后再试",
  [Code.Unavailable]: "网络连接不稳定，请稍后再试",
  [Code.DeadlineExceeded]: "服务响应超时，请稍后再试",
  [Code.FailedPrecondition]: "当前状态下无法进行该操作",
  [Code.InvalidArgument]: "填写的信息有误，请检查后再试",
  [Code.AlreadyExists]: "请勿重复提交",
};

function readStrings(bytes: Uint8Array): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === WireType.LengthDelimited) {
      const raw = r.bytes();
      const list = out.get(no) ?? [];
      list.push(new TextDecoder().decode(raw));
      out.set(no, list);
    } else {
      r.skip(wt);
    }
  }
  return out;
}

// google.rpc.BadRequest.FieldViolation: field = 1, description = 2 (for developers),
// localized_message = 4 (google.rpc.LocalizedMessage: locale = 1, message = 2). The services
// put the Chinese text for the taxpayer in localized_message; `description` here is that
// text when present, else the developer description.
function readViolation(bytes: Uint8Array): FieldViolation {
  const r = new BinaryReader(bytes);
  let field = "";
  let dev = "";
  let localized = "";
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt !== WireType.LengthDelimited) {
      r.skip(wt);
      continue;
    }
    const raw = r.bytes();
    if (no === 1) field = new TextDecoder().decode(raw);
    else if (no === 2) dev = new TextDecoder().decode(raw);
    else if (no === 4) localized = readStrings(raw).get(2)?.[0] ?? "";
  }
  return { field, description: localized || dev };
}

function readViolations(bytes: Uint8Array): FieldViolation[] {
  const r = new BinaryReader(bytes);
  const out: FieldViolation[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) {
      out.push(readViolation(r.bytes()));
    } else {
      r.skip(wt);
    }
  }
  return out;
}

export function failure(err: unknown): ApiFailure {
  const e = ConnectError.from(err);
  let message = "";
  let violations: FieldViolation[] = [];
  for (const d of e.details) {
    if (!("type" in d) || typeof d.type !== "string" || !(d.value instanceof Uint8Array)) continue;
    try {
      if (d.type === "google.rpc.LocalizedMessage") {
        message = readStrings(d.value).get(2)?.[0] ?? message;
      } else if (d.type === "google.rpc.BadRequest") {
        violations = readViolations(d.value);
      }
    } catch {
      // A detail we cannot read is ignored; the code still gives a sensible text.
    }
  }
  if (!message) message = FALLBACK[e.code] ?? "系统繁忙，请稍后再试";
  return { code: e.code, message, violations };
}

/** The violation for a form field, matching `field` or any `field.sub` / `field[0]`. */
export function violationFor(f: ApiFailure | null, field: string): string {
  if (!f) return "";
  const v = f.violations.find(
    (x) => x.field === field || x.field.startsWith(field + ".") || x.field.startsWith(field + "["),
  );
  return v ? v.description : "";
}
