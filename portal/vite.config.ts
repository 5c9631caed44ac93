import { fileURLToPath } from 'node:url';

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const outDir = fileURLToPath(new URL('../src/agent_portal/web/static', import.meta.url));
const backend = process.env.AGENT_PORTAL_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  base: './',
  // The client package is a symlink to ../clients/typescript, which has React of its own (dev): one copy only.
  resolve: { dedupe: ['react', 'react-dom', 'socket.io-client'] },
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 600 },
  server: {
    port: 5173,
    proxy: {
      '/api': backend,
      '/socket.io': { target: backend, ws: true },
    },
  },
});
