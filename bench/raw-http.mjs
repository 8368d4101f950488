// HTTP/1.1 on a raw keep-alive socket, for the benchmarks' clients: a request is one pre-built
// buffer, an answer is found by its status line and Content-Length, nothing is pipelined (one
// request in flight per connection). node:http's client and fetch cost tens of microseconds per
// request; in a figure whose client shares the machine (figure 1) or the thread (figure 5) with the
// server, that cost was measured as the server's. Plain JavaScript so the load worker thread can
// import it without a TypeScript loader; types in raw-http.d.mts.
import { connect } from 'node:net';

/** The bytes of one POST with a body, ready to write as many times as needed. */
export function postRequest(url, path, headers, body) {
  const target = new URL(url);
  const lines = Object.entries({ ...headers, 'Content-Length': Buffer.byteLength(body) }).map(([k, v]) => `${k}: ${v}\r\n`);
  return Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${target.host}\r\n${lines.join('')}\r\n${body}`);
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One keep-alive connection; `onAnswer(status)` is called once per complete answer, `onClose()` when
 * the socket is gone (a socket error ends in a close too).
 */
export class RawConnection {
  static open(url, onAnswer, onClose = () => undefined) {
    const target = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: target.hostname, port: Number(target.port) }, () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket, onAnswer, onClose));
      });
      socket.once('error', reject);
    });
  }

  constructor(socket, onAnswer, onClose) {
    this.socket = socket;
    this.onAnswer = onAnswer;
    this.buffer = Buffer.alloc(0);
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.read(chunk));
    socket.on('error', () => undefined);
    socket.on('close', onClose);
  }

  send(request) {
    this.socket.write(request);
  }

  close() {
    this.socket.destroy();
  }

  read(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const end = this.buffer.indexOf(HEADER_END);
      if (end < 0) return;
      const head = this.buffer.toString('latin1', 0, end);
      if (/\r\ntransfer-encoding:/i.test(head)) throw new Error(`raw-http reads answers by Content-Length, got: ${head}`);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const total = end + 4 + length;
      if (this.buffer.length < total) return;
      this.buffer = this.buffer.subarray(total);
      this.onAnswer(Number(head.slice(9, 12)));
    }
  }
}
