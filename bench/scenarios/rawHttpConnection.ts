import { connect, type Socket } from 'node:net';

/**
 * One keep-alive HTTP/1.1 connection for the open-loop load generators, on a raw socket: the
 * request bytes are prepared by the caller, the response is parsed just enough to find its end
 * (status line + Content-Length). One request at a time (no pipelining), like a browser or
 * node:http's Agent. What autocannon does, minus its closed loop: node:http's client costs
 * several times the CPU per request, and on 2 cores a generator that needs CPU delays the very
 * responses it timestamps (see docs/benchmarks.md, "http: the load generators").
 *
 * Only responses with a Content-Length (every JSON route of the API) are understood; anything
 * else (chunked, a closed socket, garbage) settles the request as an error and reconnects.
 */
export type Settle = (status: number | null) => void;

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

export class RawHttpConnection {
  private socket: Socket;
  private buffered: Buffer | null = null;
  /** Bytes the current response still needs (-1: its headers are not complete yet). */
  private needed = -1;
  private status = 0;
  private settle: Settle | null = null;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.socket = this.open();
  }

  get busy(): boolean {
    return this.settle !== null;
  }

  /** Sends `request` (complete bytes); `settle` gets the status, or null on an error. */
  send(request: Buffer, settle: Settle): void {
    this.settle = settle;
    this.needed = -1;
    this.socket.write(request);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const broken = (): void => {
      if (this.socket !== socket) return;
      this.finish(null);
      if (!this.closed) this.socket = this.open();
    };
    socket.on('error', broken);
    socket.on('close', broken);
    return socket;
  }

  private onData(chunk: Buffer): void {
    const data = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = null;
    if (this.needed < 0) {
      const end = data.indexOf(HEADER_END);
      if (end < 0) {
        this.buffered = data;
        return;
      }
      const head = data.toString('latin1', 0, end);
      const length = CONTENT_LENGTH.exec(head);
      this.status = Number(head.slice(9, 12));
      if (!length || !head.startsWith('HTTP/1.1 ')) {
        this.fail();
        return;
      }
      this.needed = end + HEADER_END.length + Number(length[1]);
    }
    if (data.length < this.needed) {
      this.buffered = data;
    } else if (data.length === this.needed) {
      this.finish(this.status);
    } else {
      // Bytes beyond the response: nothing was pipelined, so the stream is out of step.
      this.fail();
    }
  }

  private finish(status: number | null): void {
    const settle = this.settle;
    this.settle = null;
    this.buffered = null;
    this.needed = -1;
    settle?.(status);
  }

  private fail(): void {
    this.finish(null);
    this.socket.destroy();
  }
}
