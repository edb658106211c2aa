import { defineConfig } from 'vitest/config';
import type { ProxyOptions } from 'vite';

// The Rust server serves frontend/dist at `/`; relative asset paths keep the
// bundle working under any mount point and when opened from disk.
// `npm run dev` proxies to a running candlecast; CANDLECAST_URL overrides the address.
const backend = process.env.CANDLECAST_URL ?? 'http://127.0.0.1:8080';

// The server lets browsers reach /ws and /socket.io/ from its own origin only ([ws] allowed_origins,
// [scripts] cors_origins): through this proxy the page's origin is the dev server's, so the proxied
// requests present the backend's own Host and Origin.
function sameOrigin(options: ProxyOptions): ProxyOptions {
  const origin = new URL(backend).origin;
  return {
    ...options,
    changeOrigin: true,
    configure: (proxy) => {
      proxy.on('proxyReq', (req) => req.setHeader('origin', origin));
      proxy.on('proxyReqWs', (req) => req.setHeader('origin', origin));
    },
  };
}

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
      '/ws': sameOrigin({ target: backend.replace(/^http/, 'ws'), ws: true }),
      // The Script activity panel's Socket.IO connection.
      '/socket.io': sameOrigin({ target: backend, ws: true }),
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
