/**
 * Logging: structured JSON lines to a file (when configured), a short human line to stderr
 * on a terminal. Secrets are redacted wherever they appear in a logged object.
 */
import { appendFileSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys whose values never reach a log line or an API response. */
const SECRET_KEY = /(password|passwd|secret|token|_key$|^key$|credential|auth_token)/i;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined && v !== '' ? '******' : redact(v, depth + 1);
  }
  return out;
}

export interface LogSink { file?: string; level: Level; stderr: boolean }
const sink: LogSink = { level: (process.env.OOO_LOG_LEVEL as Level) || 'info', stderr: true };

export function configureLogging(opts: Partial<LogSink>): void {
  Object.assign(sink, opts);
}

export class Logger {
  constructor(private readonly component: string, private readonly fields: Record<string, unknown> = {}) {}

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.component, { ...this.fields, ...fields });
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.write('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.write('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.write('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.write('error', msg, fields); }

  private write(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[sink.level]) return;
    const rec = redact({ ts: new Date().toISOString(), level, component: this.component, msg, ...this.fields, ...fields }) as Record<string, unknown>;
    if (sink.file) {
      try { appendFileSync(sink.file, JSON.stringify(rec) + '\n'); } catch { /* a full disk must not stop the service */ }
    }
    if (sink.stderr) {
      const extra = Object.entries(rec)
        .filter(([k]) => !['ts', 'level', 'component', 'msg'].includes(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${rec.ts} ${level.toUpperCase().padEnd(5)} ${this.component}: ${msg}${extra ? ' ' + extra : ''}\n`);
    }
  }
}

export function logger(component: string): Logger {
  return new Logger(component);
}
