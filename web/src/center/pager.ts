// Cursor paging for the personal-centre lists (the APIs page with opaque tokens, so pages
// are walked forwards and the earlier tokens are kept for 上一页).
import { reactive } from "vue";
import { failure } from "../api/errors";

export interface PageResult<T> {
  items: T[];
  next: string;
  total: number;
}

export function usePager<T>(fetch: (token: string, size: number) => Promise<PageResult<T>>, size = 10) {
  const p = reactive({
    items: [] as T[],
    /** 1-based page number. */
    page: 1,
    total: 0,
    next: "",
    loading: false,
    error: "",
    size,
  });
  // tokens[i] is the token of page i+1 ("" for the first page).
  let tokens: string[] = [""];
  let seq = 0;

  async function load(page: number) {
    const mine = ++seq;
    p.loading = true;
    try {
      const r = await fetch(tokens[page - 1] ?? "", p.size);
      if (mine !== seq) return;
      p.items = r.items as typeof p.items;
      p.page = page;
      p.next = r.next;
      p.total = r.total;
      p.error = "";
      tokens = tokens.slice(0, page);
      if (r.next) tokens.push(r.next);
    } catch (e) {
      if (mine !== seq) return;
      p.error = failure(e).message;
    } finally {
      if (mine === seq) p.loading = false;
    }
  }

  return {
    state: p,
    /** Reloads from the first page (after a query or a change). */
    reset: () => {
      tokens = [""];
      return load(1);
    },
    /** Reloads the current page. */
    refresh: () => load(p.page),
    nextPage: () => (p.next ? load(p.page + 1) : Promise.resolve()),
    prevPage: () => (p.page > 1 ? load(p.page - 1) : Promise.resolve()),
  };
}
