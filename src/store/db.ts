/**
 * One database interface over SQLite (embedded default) and PostgreSQL (`--database
 * postgresql://...`). Queries are written once with `?` placeholders; each driver adapts them.
 * JSON is stored as text and booleans as 0/1 integers in both, so rows look the same.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Row = Record<string, unknown>;
export type Dialect = 'sqlite' | 'postgres';

export interface Db {
  readonly dialect: Dialect;
  all<T = Row>(sql: string, params?: unknown[]): Promise<T[]>;
  get<T = Row>(sql: string, params?: unknown[]): Promise<T | undefined>;
  /** Runs a statement; `changes` is the number of rows it touched. */
  run(sql: string, params?: unknown[]): Promise<{ changes: number }>;
  /** Runs fn in one transaction on a handle of its own; commits if fn resolves, rolls back if it throws. */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /** Asks to be told when `notify(channel)` is called, in this process or (PostgreSQL) any other. Returns the way to stop. */
  listen(channel: string, fn: () => void): Promise<() => void>;
  notify(channel: string): Promise<void>;
  /**
   * A value that changes whenever the database may have changed, from this process or another;
   * undefined when the store cannot tell cheaply (then nothing may be cached).
   */
  version(): string | undefined;
  close(): Promise<void>;
}

export class DatabaseUrlError extends Error {}

/** Opens a database from a URL: `sqlite:///path`, a plain path, or `postgresql://...`. */
export async function openDb(url: string): Promise<Db> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const db = new PgDb(url);
    await db.get('SELECT 1');
    return db;
  }
  let path = url;
  if (url.startsWith('sqlite://')) path = url.slice('sqlite://'.length);
  else if (/^[a-z]+:\/\//i.test(url)) throw new DatabaseUrlError(`unsupported database URL '${url.replace(/\/\/[^@/]*@/, '//***@')}': use sqlite:///PATH or postgresql://...`);
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new SqliteDb(path);
}

type Listeners = Map<string, Set<() => void>>;
function addListener(listeners: Listeners, channel: string, fn: () => void): () => void {
  let set = listeners.get(channel);
  if (!set) listeners.set(channel, (set = new Set()));
  set.add(fn);
  return () => { set!.delete(fn); };
}
function fire(listeners: Listeners, channel: string): void {
  for (const fn of listeners.get(channel) ?? []) queueMicrotask(fn);
}

class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  /** While a transaction runs, other work on this connection waits for it. */
  private txTail: Promise<unknown> = Promise.resolve();
  private inTx = false;
  private readonly listeners: Listeners = new Map();
  private writes = 0;
  private dataVersion?: Database.Statement;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (this.stmts.size > 500) this.stmts.clear();
      this.stmts.set(sql, s);
    }
    return s;
  }

  private async idle(): Promise<void> {
    while (this.inTx) await this.txTail.catch(() => undefined);
  }

  // Direct (transaction-internal) operations.
  allNow<T>(sql: string, params: unknown[] = []): T[] {
    return this.stmt(sql).all(...params.map(sqliteValue)) as T[];
  }
  runNow(sql: string, params: unknown[] = []): { changes: number } {
    this.writes++;
    const s = this.stmt(sql);
    if (!s.reader) return { changes: s.run(...params.map(sqliteValue)).changes };
    s.all(...params.map(sqliteValue));
    return { changes: 0 };
  }

  async all<T>(sql: string, params?: unknown[]): Promise<T[]> {
    if (this.inTx) await this.idle();
    return this.allNow<T>(sql, params);
  }
  async get<T>(sql: string, params?: unknown[]): Promise<T | undefined> {
    if (this.inTx) await this.idle();
    return this.stmt(sql).get(...(params ?? []).map(sqliteValue)) as T | undefined;
  }
  async run(sql: string, params?: unknown[]): Promise<{ changes: number }> {
    if (this.inTx) await this.idle();
    return this.runNow(sql, params);
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    // Transactions queue behind each other; statements outside them wait while one runs.
    const prev = this.txTail;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.txTail = prev.then(() => mine, () => mine);
    await prev.catch(() => undefined);
    this.inTx = true;
    const handle = new SqliteTxHandle(this);
    try {
      this.db.exec('BEGIN IMMEDIATE');
      const out = await fn(handle);
      this.db.exec('COMMIT');
      return out;
    } catch (e) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw e;
    } finally {
      handle.closed = true;
      this.inTx = false;
      release();
    }
  }

  async listen(channel: string, fn: () => void): Promise<() => void> {
    return addListener(this.listeners, channel, fn);
  }
  async notify(channel: string): Promise<void> { fire(this.listeners, channel); }
  version(): string | undefined {
    if (this.inTx) return undefined;
    // data_version moves when another connection (another process) commits; writes counts ours.
    this.dataVersion ??= this.db.prepare('PRAGMA data_version').pluck();
    return `${this.writes}:${this.dataVersion.get() as number}`;
  }
  async close(): Promise<void> { this.db.close(); }
  exec(sql: string): void { this.db.exec(sql); }
}

class SqliteTxHandle implements Db {
  readonly dialect = 'sqlite' as const;
  closed = false;
  constructor(private readonly parent: SqliteDb) {}
  private check(): void { if (this.closed) throw new Error('transaction handle used after its transaction ended'); }
  async all<T>(sql: string, params?: unknown[]): Promise<T[]> { this.check(); return this.parent.allNow<T>(sql, params); }
  async get<T>(sql: string, params?: unknown[]): Promise<T | undefined> { this.check(); return this.parent.allNow<T>(sql, params)[0]; }
  async run(sql: string, params?: unknown[]): Promise<{ changes: number }> { this.check(); return this.parent.runNow(sql, params); }
  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> { return fn(this); }
  listen(channel: string, fn: () => void): Promise<() => void> { return this.parent.listen(channel, fn); }
  notify(channel: string): Promise<void> { return this.parent.notify(channel); }
  version(): string | undefined { return undefined; }
  async close(): Promise<void> { /* owned by the parent */ }
}

function sqliteValue(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === undefined) return null;
  return v;
}

/** `?` placeholders to `$1..$n`, leaving quoted strings alone. */
const pgSqlCache = new Map<string, string>();
export function toPgSql(sql: string): string {
  let out = pgSqlCache.get(sql);
  if (out !== undefined) return out;
  let n = 0;
  let quoted = false;
  out = '';
  for (const ch of sql) {
    if (ch === "'") quoted = !quoted;
    out += ch === '?' && !quoted ? `$${++n}` : ch;
  }
  if (pgSqlCache.size < 2000) pgSqlCache.set(sql, out);
  return out;
}

function pgValue(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === undefined) return null;
  return v;
}

/** PostgreSQL returns int8 and numeric as strings; callers expect numbers for counts and ids. */
pg.types.setTypeParser(20, (v) => Number(v));

interface PgQueryable { query(text: string, values?: unknown[]): Promise<pg.QueryResult> }

class PgBase {
  constructor(protected readonly q: PgQueryable) {}
  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.q.query(toPgSql(sql), params.map(pgValue))).rows as T[];
  }
  async get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }
  async run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    const r = await this.q.query(toPgSql(sql), params.map(pgValue));
    return { changes: r.rowCount ?? 0 };
  }
}

class PgDb extends PgBase implements Db {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  private listenClient?: pg.Client;
  private readonly listening = new Set<string>();
  private readonly listeners: Listeners = new Map();

  constructor(private readonly url: string) {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    super(pool);
    this.pool = pool;
    pool.on('error', () => { /* a dropped idle connection is replaced on next use */ });
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(new PgTxHandle(client, this));
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async listen(channel: string, fn: () => void): Promise<() => void> {
    const stop = addListener(this.listeners, channel, fn);
    if (this.listening.has(channel)) return stop;
    this.listening.add(channel);
    if (!this.listenClient) {
      this.listenClient = new pg.Client({ connectionString: this.url });
      this.listenClient.on('notification', (m) => fire(this.listeners, m.channel));
      this.listenClient.on('error', () => { /* polling still finds the work */ });
      await this.listenClient.connect();
    }
    await this.listenClient.query(`LISTEN "${channel.replace(/"/g, '')}"`);
    return stop;
  }

  async notify(channel: string): Promise<void> {
    await this.pool.query(`NOTIFY "${channel.replace(/"/g, '')}"`);
  }

  version(): string | undefined { return undefined; }

  async close(): Promise<void> {
    await this.listenClient?.end().catch(() => undefined);
    await this.pool.end();
  }
}

class PgTxHandle extends PgBase implements Db {
  readonly dialect = 'postgres' as const;
  constructor(client: pg.PoolClient, private readonly parent: PgDb) { super(client); }
  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> { return fn(this); }
  listen(channel: string, fn: () => void): Promise<() => void> { return this.parent.listen(channel, fn); }
  notify(channel: string): Promise<void> { return this.parent.notify(channel); }
  version(): string | undefined { return undefined; }
  async close(): Promise<void> { /* released by the parent */ }
}
