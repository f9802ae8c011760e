// Builds the dashboard into dist/: index.html plus content-hashed files under dist/assets/,
// which weir-server embeds in the binary (src/ui.rs) and serves at / and /assets/*.
import { defineConfig } from "vite";

// `npm run dev` / `vite preview` proxy the API to a running weir (WEIR_URL, default the
// demo's address).
const weir = process.env.WEIR_URL ?? "http://127.0.0.1:8080";
const proxy = Object.fromEntries(["/v1", "/health", "/ready", "/metrics"].map((p) => [p, weir]));

export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    // One small bundle; no inlined data: URLs, so every asset has a proper content type.
    assetsInlineLimit: 0,
    target: "es2020",
  },
  server: { proxy },
  preview: { proxy },
});
