/**
 * Test helpers: start a real seed on loopback (SQLite in a temp dir, or a fresh PostgreSQL
 * database), and talk to it over HTTP with a token, as any client would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startSeed, RunningSeed } from '../../src/services/seed.js';
import { configureLogging } from '../../src/util/log.js';

configureLogging({ stderr: false, level: 'error' });

export const PG_URL = process.env.OOO_TEST_POSTGRES_URL;
/** The stores every store/API test runs on: SQLite always, PostgreSQL when the test script started one. */
export const STORES: ('sqlite' | 'postgres')[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];
export const PG_SKIP = PG_URL ? false : 'PostgreSQL is not running (scripts/test.sh starts it; OOO_TEST_POSTGRES_URL unset)';

/** A new empty PostgreSQL database; returns its URL and a function that drops it. */
export async function freshPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!PG_URL) throw new Error('OOO_TEST_POSTGRES_URL is not set');
  const name = `ooo_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await c.end();
    },
  };
}

export interface TestSeed {
  url: string;
  dataDir: string;
  database: string;
  seed: RunningSeed;
  token: string;
  adminPassword: string;
  stop(): Promise<void>;
  /** Calls the API with the admin token (or the given headers). */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  /** Bare-metal API at the latest microversion. */
  bm(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  tokenFor(user: string, password: string, scope?: unknown): Promise<string>;
}

export async function startTestSeed(store: 'sqlite' | 'postgres' = 'sqlite', opts: { only?: ('api' | 'conductor')[]; waitTimeoutS?: number; powerSyncS?: number; conductorName?: string; deadAfterS?: number; provisioning?: { interface: string; range?: { start: string; end: string } } } = {}): Promise<TestSeed> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ooo-test-'));
  let database = '';
  let drop: (() => Promise<void>) | undefined;
  if (store === 'postgres') ({ url: database, drop } = await freshPgDatabase());
  const adminPassword = 'test-' + randomBytes(8).toString('hex');
  const seed = await startSeed({
    dataDir, host: '127.0.0.1', port: 0, database, only: new Set(opts.only ?? ['api', 'conductor']), conductorGroup: '',
    adminPassword, waitTimeoutS: opts.waitTimeoutS, deadAfterS: opts.deadAfterS, powerSyncS: opts.powerSyncS, provisioning: opts.provisioning, conductorName: opts.conductorName ?? `test-${randomBytes(3).toString('hex')}`,
  });
  const url = seed.url!;
  const raw = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(`${url}${path}`, {
      method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* keep text */ }
    return { status: r.status, body: parsed as any, headers: r.headers };
  };
  const tokenFor = async (user: string, password: string, scope: unknown = { project: { name: 'admin', domain: { id: 'default' } } }) => {
    const r = await raw('POST', '/identity/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } }, ...(scope ? { scope } : {}) } });
    if (r.status !== 201) throw new Error(`token for ${user}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.headers.get('x-subject-token')!;
  };
  const token = await tokenFor('admin', adminPassword);
  const t: TestSeed = {
    url, dataDir, database, seed, token, adminPassword, tokenFor,
    call: (m, p, b, h = {}) => raw(m, p, b, { 'X-Auth-Token': token, ...h }),
    bm: (m, p, b, h = {}) => raw(m, `/baremetal${p}`, b, { 'X-Auth-Token': token, 'X-OpenStack-Ironic-API-Version': 'latest', ...h }),
    async stop() {
      await seed.stop();
      await drop?.();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}

/** The error message inside an Ironic error body. */
export function ironicMessage(body: any): string {
  return JSON.parse(body.error_message).faultstring;
}

/** Polls until fn returns a truthy value or the time runs out. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 15000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitState(s: TestSeed, node: string, state: string, timeoutMs = 15000): Promise<any> {
  return eventually(async () => {
    const r = await s.bm('GET', `/v1/nodes/${node}`);
    // Stable states have no target; wait and failed states keep theirs.
    const stable = ['enroll', 'manageable', 'available', 'active', 'error', 'rescue'].includes(state);
    return r.body.provision_state === state && !r.body.reservation && (!stable || !r.body.target_provision_state) ? r.body : undefined;
  }, timeoutMs, `node ${node} to reach ${state}`);
}
