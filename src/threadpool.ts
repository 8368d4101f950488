// Imported first by main.ts, before anything touches the file system. Every synced file costs
// several libuv thread-pool calls (open, write, fsync, rename, utimes, stat); with Node's default
// of 4 threads the download lanes queue behind each other (docs/benchmarks.md, figure 4).
process.env.UV_THREADPOOL_SIZE ??= '16';
