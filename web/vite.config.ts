import { defineConfig } from "vite";

// Relative asset paths so the built canvas works wherever the server mounts web/dist.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      // litegraph's number widget evaluates typed arithmetic with eval(); that is its own, known choice.
      onwarn(warning, warn) {
        if (warning.code !== "EVAL") warn(warning);
      },
    },
  },
});
