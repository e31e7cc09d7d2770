// ipx (https://github.com/unjs/ipx, on sharp/libvips) for bench/server.sh, one worker per core.
//
// `npx ipx serve` is a single Node process. sharp already spreads one image over libvips
// threads and runs up to UV_THREADPOOL_SIZE (4) images at once, but the HTTP parsing,
// routing and the JavaScript half of each request stay on one event loop. To match
// `pixfit serve --workers 2` (one process per core) this runs IPX_WORKERS processes under
// node:cluster, sharing one listening socket (the primary hands connections round-robin,
// Node's default on Linux). Each worker is what `ipx serve --dir DIR` builds: createIPX
// with an ipxFSStorage and createIPXNodeServer, with ipx's and sharp's default settings.
//
// bench/server.sh copies this file next to the ipx install (bench/.peers/ipx) so that
// `import "ipx"` resolves there, then runs:
//
//     IPX_FS_DIR=PHOTOS HOST=127.0.0.1 PORT=P IPX_WORKERS=2 node server.mjs
//
// IPX_SHARP_CONCURRENCY (optional) sets sharp.concurrency(), libvips threads per image.

import cluster from "node:cluster";
import http from "node:http";
import os from "node:os";

const workers = Number(process.env.IPX_WORKERS || os.availableParallelism());
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 3000);

if (workers > 1 && cluster.isPrimary) {
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    if (!stopping) {
      console.error(`ipx worker ${worker.process.pid} died (${signal || code})`);
      process.exitCode = 1;
    }
  });
  const stop = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.kill();
    setTimeout(() => process.exit(), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const { createIPX, createIPXNodeServer, ipxFSStorage } = await import("ipx");
  if (process.env.IPX_SHARP_CONCURRENCY) {
    const sharp = (await import("sharp")).default;
    sharp.concurrency(Number(process.env.IPX_SHARP_CONCURRENCY));
  }
  const ipx = createIPX({ storage: ipxFSStorage({ dir: process.env.IPX_FS_DIR }) });
  http.createServer(createIPXNodeServer(ipx)).listen(port, host, () => {
    console.log(`ipx worker ${process.pid} listening on http://${host}:${port}`);
  });
}
