// The chat input, shared by the composer and whatever fills it (autocomplete, quick entries,
// hot words, voice input).
import { reactive } from "vue";

export const composer = reactive({
  draft: "",
  /** Focus request counter: bump to focus the input. */
  focus: 0,
});

export const MAX_INPUT = 300;
