import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// Two pages: the demo host page (index.html, imitating the e-invoice service platform, which
// embeds the widget with one <script> tag: public/embed.js) and the widget app itself
// (widget.html: chat, dialogs and the personal centre). The gateway serves dist/.
export default defineConfig({
  plugins: [vue()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: {
        index: "index.html",
        widget: "widget.html",
      },
    },
  },
  server: {
    // `npm run dev` against a running `make dev`: grpc-web, uploads and dev tokens go to the gateway.
    proxy: {
      "^/zhengna\\.": "http://127.0.0.1:8080",
      "/dev": "http://127.0.0.1:8080",
      "/uploads": "http://127.0.0.1:8080",
      "/files": "http://127.0.0.1:8080",
    },
  },
});
