// The taxpayer's chat preferences (快捷入口, 字体大小), kept on the server
// (ConversationService.GetPreferences / UpdatePreferences) and shared by the chat screens.
import { computed, reactive } from "vue";
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { conversation as api } from "../../api/client";
import { failure, type ApiFailure } from "../../api/errors";
import { FontSize, type QuickEntry } from "../../gen/zhengna/session/v1/conversation_pb.js";
import { channel } from "./util";

/** The most quick entries a taxpayer can show (the server enforces the same limit). */
export const MAX_QUICK_ENTRIES = 8;

export const FONT_SIZES: { size: FontSize; label: string; scale: number }[] = [
  { size: FontSize.SMALL, label: "小", scale: 0.875 },
  { size: FontSize.MEDIUM, label: "标准", scale: 1 },
  { size: FontSize.LARGE, label: "大", scale: 1.15 },
  { size: FontSize.EXTRA_LARGE, label: "特大", scale: 1.3 },
];

export const prefs = reactive({
  loaded: false,
  fontSize: FontSize.MEDIUM as FontSize,
  quickEntryIds: [] as string[],
  /** Every quick entry available (快捷入口 更多). */
  catalog: [] as QuickEntry[],
  error: null as ApiFailure | null,
});

/** Multiplier for the chat's font size (ChatView's --zn-font-scale). */
export const fontScale = computed(() => FONT_SIZES.find((f) => f.size === prefs.fontSize)?.scale ?? 1);

/** The chosen quick entries, resolved against the catalog, in the chosen order. */
export const chosenEntries = computed(() =>
  prefs.quickEntryIds
    .map((id) => prefs.catalog.find((e) => e.id === id))
    .filter((e): e is QuickEntry => !!e),
);

let loading: Promise<void> | null = null;

/** Loads the preferences and the quick-entry catalog once (again after a failure). */
export function loadPrefs(): Promise<void> {
  if (!loading) {
    loading = (async () => {
      try {
        const [p, all] = await Promise.all([
          api.getPreferences({ channel: channel() }),
          api.listQuickEntries({ channel: channel() }),
        ]);
        prefs.catalog = all.quickEntries.length ? all.quickEntries : p.quickEntries;
        prefs.quickEntryIds = [...(p.preferences?.quickEntryIds ?? [])];
        prefs.fontSize = p.preferences?.fontSize || FontSize.MEDIUM;
        prefs.loaded = true;
        prefs.error = null;
      } catch (e) {
        prefs.error = failure(e);
        loading = null;
      }
    })();
  }
  return loading;
}

async function update(paths: string[], values: { quickEntryIds?: string[]; fontSize?: FontSize }) {
  const res = await api.updatePreferences({
    channel: channel(),
    preferences: {
      quickEntryIds: values.quickEntryIds ?? prefs.quickEntryIds,
      fontSize: values.fontSize ?? prefs.fontSize,
    },
    updateMask: create(FieldMaskSchema, { paths }),
  });
  if (res.preferences) {
    prefs.quickEntryIds = [...res.preferences.quickEntryIds];
    prefs.fontSize = res.preferences.fontSize || FontSize.MEDIUM;
  }
}

/** Stores the ordered quick entries; the view changes at once and reverts on failure. */
export async function saveQuickEntries(ids: string[]): Promise<ApiFailure | null> {
  const before = prefs.quickEntryIds;
  prefs.quickEntryIds = ids;
  try {
    await update(["quick_entry_ids"], { quickEntryIds: ids });
    return null;
  } catch (e) {
    prefs.quickEntryIds = before;
    return failure(e);
  }
}

/** Stores the font size; applied at once and reverted on failure. */
export async function saveFontSize(size: FontSize): Promise<ApiFailure | null> {
  const before = prefs.fontSize;
  prefs.fontSize = size;
  try {
    await update(["font_size"], { fontSize: size });
    return null;
  } catch (e) {
    prefs.fontSize = before;
    return failure(e);
  }
}
