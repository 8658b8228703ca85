/**
 * A QMP (QEMU Machine Protocol) client over a unix socket: greeting, capabilities negotiation,
 * commands matched to their answers by id, and asynchronous events.
 */
import { EventEmitter } from 'node:events';
import { connect, Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** An error answer from QEMU (`{"error": {"class", "desc"}}`) or a failed exchange. */
export class QmpError extends Error {
  constructor(message: string, readonly errorClass?: string, readonly command?: string) {
    super(message);
    this.name = 'QmpError';
  }
}

interface Pending { command: string; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export interface QmpConnectOptions {
  /** How long to keep trying while the socket does not exist or refuses yet (qemu starting); default 10 s. */
  timeoutMs?: number;
  /** Default per-command timeout; default 30 s. */
  commandTimeoutMs?: number;
}

/**
 * One QMP connection. QEMU serves one client per QMP socket at a time: share this object
 * rather than opening a second connection to the same socket.
 *
 * Events: 'event' (QmpEvent), and the event name itself (e.g. 'SHUTDOWN', with the QmpEvent);
 * 'close' when the connection ends.
 */
export class QmpClient extends EventEmitter {
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private ended = false;
  private endReason = 'connection closed';
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  greeting: { QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] } } | undefined;

  private constructor(private readonly sock: Socket, readonly path: string, private readonly commandTimeoutMs: number) {
    super();
    this.closed = new Promise((r) => { this.resolveClosed = r; });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => { this.endReason = `QMP socket ${path}: ${e.message}`; });
    sock.on('close', () => this.onClose());
  }

  /** Connect to `path`, read the greeting and negotiate capabilities. */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    let lastErr: Error | undefined;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => { s.removeListener('error', reject); resolve(s); });
          s.once('error', reject);
        });
        const c = new QmpClient(sock, path, opts.commandTimeoutMs ?? 30_000);
        await c.handshake(Math.max(1000, deadline - Date.now()));
        return c;
      } catch (e) {
        lastErr = e as Error;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new QmpError(`cannot connect to QMP socket ${path}: ${lastErr?.message ?? 'timeout'}`);
  }

  private greetingWaiter: ((g: any) => void) | undefined;

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<any>((resolve, reject) => {
      const t = setTimeout(() => { reject(new QmpError(`no QMP greeting on ${this.path} within ${timeoutMs} ms`)); this.close(); }, timeoutMs);
      this.greetingWaiter = (g) => { clearTimeout(t); resolve(g); };
      this.once('close', () => { clearTimeout(t); reject(new QmpError(`QMP socket ${this.path} closed before the greeting (another client connected?)`)); });
    });
    this.greeting = greeting;
    await this.execute('qmp_capabilities');
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: any;
      try { msg = JSON.parse(line); } catch { continue; }
      this.onMessage(msg);
    }
  }

  private onMessage(msg: any): void {
    if (msg.QMP) { this.greetingWaiter?.(msg); this.greetingWaiter = undefined; return; }
    if (typeof msg.event === 'string') {
      const ev: QmpEvent = { event: msg.event, data: msg.data, timestamp: msg.timestamp };
      this.emit('event', ev);
      this.emit(ev.event, ev);
      return;
    }
    const id = msg.id === undefined ? undefined : String(msg.id);
    if (id === undefined) return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new QmpError(`QMP ${p.command}: ${msg.error.desc ?? 'error'} (${msg.error.class ?? 'unknown class'})`, msg.error.class, p.command));
    else p.resolve(msg.return);
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new QmpError(`QMP ${p.command}: ${this.endReason} before an answer (did qemu exit?)`, undefined, p.command));
    }
    this.pending.clear();
    this.emit('close');
    this.resolveClosed();
  }

  get isOpen(): boolean { return !this.ended; }

  /** Run a command; resolves with its `return` value, rejects with QmpError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    if (this.ended) return Promise.reject(new QmpError(`QMP ${command}: ${this.endReason}`, undefined, command));
    const id = `ooo-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP ${command}: no answer within ${timeoutMs} ms`, undefined, command));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Record<string, unknown> = { execute: command, id };
      if (args) msg.arguments = args;
      this.sock.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Wait for the next event named `name` (optionally matching `pred`). */
  waitEvent(name: string, timeoutMs: number, pred: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEv = (e: QmpEvent) => { if (pred(e)) { cleanup(); resolve(e); } };
      const onClose = () => { cleanup(); reject(new QmpError(`QMP connection closed while waiting for event ${name}`)); };
      const t = setTimeout(() => { cleanup(); reject(new QmpError(`no QMP event ${name} within ${timeoutMs} ms`)); }, timeoutMs);
      const cleanup = () => { clearTimeout(t); this.removeListener(name, onEv); this.removeListener('close', onClose); };
      this.on(name, onEv);
      this.once('close', onClose);
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}
