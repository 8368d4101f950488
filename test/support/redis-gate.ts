import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real redis-server that lets commands through until the first one
 * `closeAfter` picks (that one still passes), then holds every later command of every connection
 * until `open()`. Replies always pass. It parses the RESP arrays clients send (ioredis sends
 * nothing else), so the point where it closes is one exact command, not a chunk of bytes: a test
 * can stop an engine right after one step of its boot, deterministically.
 */
export class RedisGate {
  /** The command that closed the gate, once it did. */
  closedBy: string[] | undefined;
  private readonly queued: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();
  private opened = false;

  private constructor(private readonly server: Server, private readonly closeAfter: (args: string[]) => boolean) {}

  static async start(target: { host: string; port: number }, closeAfter: (args: string[]) => boolean): Promise<RedisGate> {
    let gate: RedisGate | undefined;
    const server = createServer((client) => gate!.accept(client, target));
    gate = new RedisGate(server, closeAfter);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return gate;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /** Lets everything held through, in order, and everything after it. */
  open(): void {
    this.closedBy ??= [];
    this.opened = true;
    for (const send of this.queued.splice(0)) send();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host);
    this.sockets.add(client).add(upstream);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const parsed = parseCommand(pending);
        if (!parsed) return;
        const raw = Buffer.from(pending.subarray(0, parsed.length));
        pending = pending.subarray(parsed.length);
        if (this.closed && !this.opened) {
          this.queued.push(() => upstream.write(raw));
          continue;
        }
        upstream.write(raw);
        if (!this.opened && this.closeAfter(parsed.args)) this.closedBy = parsed.args;
      }
    });
  }
}

/** One RESP array of bulk strings at the start of `buffer`, or undefined until it is complete. */
function parseCommand(buffer: Buffer): { args: string[]; length: number } | undefined {
  if (buffer.length === 0) return undefined;
  if (buffer[0] !== 0x2a) throw new Error(`RedisGate: not a RESP array: ${JSON.stringify(buffer.subarray(0, 20).toString())}`);
  let at = buffer.indexOf('\r\n');
  if (at === -1) return undefined;
  const count = Number(buffer.subarray(1, at).toString());
  at += 2;
  const args: string[] = [];
  for (let i = 0; i < count; i++) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd === -1) return undefined;
    const size = Number(buffer.subarray(at + 1, lineEnd).toString());
    const start = lineEnd + 2;
    if (buffer.length < start + size + 2) return undefined;
    args.push(buffer.subarray(start, start + size).toString());
    at = start + size + 2;
  }
  return { args, length: at };
}
