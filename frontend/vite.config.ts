import { defineConfig } from 'vitest/config';

// The Rust server serves frontend/dist at `/`; relative asset paths keep the
// bundle working under any mount point and when opened from disk.
// `npm run dev` proxies to a running candlecast; CANDLECAST_URL overrides the address.
const backend = process.env.CANDLECAST_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // One chunk for lightweight-charts keeps the app code small to re-download.
    rollupOptions: {
      output: { manualChunks: { charts: ['lightweight-charts'] } },
    },
  },
  server: {
    proxy: {
      '/api': backend,
      '/health': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
      // The Script activity panel's Socket.IO connection.
      '/socket.io': { target: backend, ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
